import { afterEach, describe, expect, it, vi } from "vitest";
import { Frames } from "../src/frames";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("Frames.signal: a compact signal as the frame a version 1 server would send", () => {
  const frames = new Frames();

  it("[signal, kwargs]: no position", () => {
    expect(frames.signal(["chat.message", { text: "hi" }], "E1")).toEqual({
      type: "signal",
      signal: "chat.message",
      kwargs: { text: "hi" },
    });
  });

  it("[signal, kwargs, g, seq]: the seq as N-0, in the current epoch", () => {
    expect(frames.signal(["s", { a: 1 }, "G", 42], "E1")).toEqual({
      type: "signal",
      signal: "s",
      kwargs: { a: 1 },
      g: "G",
      seq: "42-0",
      e: "E1",
    });
    // No epoch known (no history): no e either.
    expect(frames.signal(["s", {}, "G", 0], undefined)).toEqual({ type: "signal", signal: "s", kwargs: {}, g: "G", seq: "0-0" });
  });

  it("[signal, kwargs, g, seq, e]: its own epoch; null is the current one", () => {
    expect(frames.signal(["s", {}, "G", 1, "E2"], "E1")).toMatchObject({ g: "G", seq: "1-0", e: "E2" });
    expect(frames.signal(["s", {}, "G", 1, null], "E1")).toMatchObject({ e: "E1" });
  });

  it("[signal, kwargs, g, seq, e_or_null, o]: o's seqs as N-0", () => {
    expect(frames.signal(["s", {}, "T", 7, null, { B: 11, U: 3 }], "E1")).toEqual({
      type: "signal",
      signal: "s",
      kwargs: {},
      g: "T",
      seq: "7-0",
      e: "E1",
      o: { B: "11-0", U: "3-0" },
    });
    expect(frames.signal(["s", {}, "T", 7, "E9", {}], "E1")).toMatchObject({ e: "E9", o: {} });
  });

  it("never has an id", () => {
    expect("id" in frames.signal(["s", {}, "T", 7, "E9", { B: 1 }], "E1")!).toBe(false);
  });
});

describe("malformed compact signals", () => {
  const malformed: [string, unknown[]][] = [
    ["one element", ["s"]],
    ["three elements", ["s", {}, "G"]],
    ["seven elements", ["s", {}, "G", 1, "E", {}, "more"]],
    ["kwargs an array", ["s", [1]]],
    ["kwargs null", ["s", null]],
    ["g not a string", ["s", {}, 5, 1]],
    ["g empty", ["s", {}, "", 1]],
    ["seq a string", ["s", {}, "G", "1-0"]],
    ["seq a fraction", ["s", {}, "G", 1.5]],
    ["seq negative", ["s", {}, "G", -1]],
    ["seq beyond 2^53", ["s", {}, "G", 2 ** 60]],
    ["e an object", ["s", {}, "G", 1, {}]],
    ["o not an object", ["s", {}, "G", 1, null, [1]]],
    ["o with a string seq", ["s", {}, "G", 1, null, { B: "3-0" }]],
  ];
  for (const [what, frame] of malformed) {
    it(`ignores one with ${what}`, () => {
      vi.spyOn(console, "warn").mockImplementation(() => {});
      expect(new Frames().signal(frame, "E")).toBeUndefined();
    });
  }

  it("warns once per kind of fault, not once per frame", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const frames = new Frames();
    for (let i = 0; i < 3; i++) {
      for (const [, frame] of malformed) frames.signal(frame, "E");
    }
    // length, kwargs, g, seq, e, o
    expect(warn).toHaveBeenCalledTimes(6);
    expect(new Set(warn.mock.calls.map((c) => c[0])).size).toBe(6);
  });
});

describe("Frames.split: the frames of one message", () => {
  it("an object or a compact signal is one frame; any other array a batch", () => {
    const frames = new Frames();
    const object = { type: "pong" };
    expect(frames.split(object)).toEqual([object]);
    expect(frames.split(["s", {}])).toEqual([["s", {}]]);
    expect(frames.split([{ type: "pong" }, ["s", {}], ["t", {}, "G", 1]])).toEqual([{ type: "pong" }, ["s", {}], ["t", {}, "G", 1]]);
    expect(frames.split([["s", {}]])).toEqual([["s", {}]]);
  });

  it("leaves out batch elements that are neither (a nested batch, a number), warning once", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const frames = new Frames();
    expect(frames.split([{ type: "pong" }, [{ type: "pong" }], 3, null, ["s", {}]])).toEqual([{ type: "pong" }, ["s", {}]]);
    expect(frames.split([[[]], "x"])).toEqual([]);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});
