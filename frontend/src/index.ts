/**
 * floorchannels browser client: the public API.
 *
 *   const client = floorchannels.connect();
 *   client.on("chat.message", ({ text }) => ...);
 *   const sum = await client.call("demo.add", { a: 1, b: 2 });
 *   const notes = liveList(client, "notes", { refetch, onChange: render });
 */

export { connect, defaultClientOrNull, resetDefaultClient, DEFAULT_URL } from "./connect";
export type { ConnectOptions } from "./connect";
export { Client, PROTOCOL_VERSION, REFUSED_CLOSE_CODES, WINDOW_HEADER } from "./client";
export type {
  CallOptions,
  CallReply,
  ClientEventDetails,
  ClientEventMap,
  ClientOptions,
  SignalFrame,
  SignalHandler,
  State,
  WebSocketConstructor,
  WebSocketLike,
  WelcomeFrame,
} from "./client";
export { Subscription } from "./subscriptions";
export type {
  EventFrame,
  ResourceAction,
  ResourceEvent,
  ResourceEventHandler,
  ResubscribeDetail,
  SubscribeOptions,
  SubscriptionErrorDetail,
} from "./subscriptions";
export { compareSeq, RECENT_IDS } from "./recovery";
export type { ResumeState, ResyncDetail, ResyncReason } from "./recovery";
export { liveList } from "./live";
export type { LiveList, LiveListOptions } from "./live";
export { FloorchannelsError, CLIENT_CODES } from "./errors";
export type { ClientErrorCode, ErrorCode, ServerErrorCode } from "./errors";
export { Backoff } from "./backoff";
export type { BackoffOptions } from "./backoff";
export { CONFIG_ELEMENT_ID, readPageConfig, websocketUrl } from "./config";
export type { PageConfig } from "./config";
export { INSERTED_EVENT, domSignals, insertHtml, installDomSignals } from "./dom";
export type { InsertPosition, InsertedDetail } from "./dom";
export { notify, TOASTS_ID } from "./notify";
export type { NotifyLevel, NotifyOptions } from "./notify";
export { ERROR_EVENT, RESULT_EVENT, fieldValue, formKwargs, runDeclared, triggerOf, wire } from "./declarative";
export type { ErrorDetail, ResultDetail } from "./declarative";
export { autostart } from "./autostart";
