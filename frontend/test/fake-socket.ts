import type { WebSocketLike } from "../src/client";

/** A scriptable stand-in for the browser's WebSocket. Every instance is recorded. */
export class FakeSocket implements WebSocketLike {
  static instances: FakeSocket[] = [];
  static reset(): void {
    FakeSocket.instances = [];
  }
  static get last(): FakeSocket {
    const s = FakeSocket.instances[FakeSocket.instances.length - 1];
    if (!s) throw new Error("no socket was opened");
    return s;
  }

  readyState = 0;
  sent: any[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((ev: any) => any) | null = null;
  onmessage: ((ev: { data: unknown }) => any) | null = null;
  onclose: ((ev: { code: number; reason: string }) => any) | null = null;
  onerror: ((ev: any) => any) | null = null;

  constructor(readonly url: string) {
    FakeSocket.instances.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // ---- driven by tests ----
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(frame: object | string): void {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }
  welcome(extra: object = {}): void {
    this.receive({ type: "welcome", window_id: "w1", protocol: 2, heartbeat: 25, key_expires: 2e9, ...extra });
  }
  /** Open and welcome in one go. */
  accept(extra: object = {}): void {
    this.open();
    this.welcome(extra);
  }
  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  sentOfType(type: string): any[] {
    return this.sent.filter((f) => f.type === type);
  }
}
