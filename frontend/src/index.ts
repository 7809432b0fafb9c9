/**
 * floorchannels browser client: the public API.
 *
 *   const client = floorchannels.connect();
 *   client.on("chat.message", ({ text }) => ...);
 *   const sum = await client.call("demo.add", { a: 1, b: 2 });
 *   const notes = liveList(client, "notes", { refetch, onChange: render });
 */

export { connect, defaultClientOrNull, resetDefaultClient, DEFAULT_URL } from "./connect.js";
export type { ConnectOptions } from "./connect.js";
export {
  Client,
  EXPIRED_CLOSE_CODE,
  PROTOCOL_VERSION,
  REFUSED_CLOSE_CODES,
  REPLACED_CLOSE_CODE,
  SESSION_ENDED,
  WINDOW_HEADER,
} from "./client.js";
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
} from "./client.js";
export { keyFromUrl, WindowKeyError } from "./keys.js";
export type { GetWindowKey, HeadersLike, KeyRequestOptions, WindowKeyContext, WindowKeyGrant } from "./keys.js";
export { Subscription } from "./subscriptions.js";
export type {
  EventFrame,
  ResourceAction,
  ResourceEvent,
  ResourceEventHandler,
  ResubscribeDetail,
  QueryValue,
  SubscribeKwargs,
  SubscribeOptions,
  SubscribeParams,
  SubscriptionErrorDetail,
} from "./subscriptions.js";
export type { JoinOptions, JoinedTopic, TopicEventDetail, TopicName } from "./topics.js";
export { compareSeq, RECENT_IDS } from "./recovery.js";
export type { ResumeState, ResyncDetail, ResyncReason } from "./recovery.js";
export { liveList } from "./live.js";
export type { LiveList, LiveListOptions, Page } from "./live.js";
export { FloorchannelsError, CLIENT_CODES } from "./errors.js";
export type { ClientErrorCode, ErrorCode, ServerErrorCode } from "./errors.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { CONFIG_ELEMENT_ID, readPageConfig, websocketUrl } from "./config.js";
export type { PageConfig } from "./config.js";
export { INSERTED_EVENT, domSignals, insertHtml, installDomSignals } from "./dom.js";
export type { InsertPosition, InsertedDetail } from "./dom.js";
export { notify, TOASTS_ID } from "./notify.js";
export type { NotifyLevel, NotifyOptions } from "./notify.js";
export { ERROR_EVENT, RESULT_EVENT, fieldValue, formKwargs, runDeclared, triggerOf, wire } from "./declarative.js";
export type { ErrorDetail, ResultDetail } from "./declarative.js";
export { autostart } from "./autostart.js";
