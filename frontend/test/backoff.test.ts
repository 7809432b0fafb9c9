import { describe, expect, it } from "vitest";
import { Backoff } from "../src/backoff";

describe("Backoff", () => {
  it("defaults to 0.5 s .. 20 s", () => {
    const b = new Backoff();
    expect(b.min).toBe(500);
    expect(b.max).toBe(20000);
  });

  it("grows the window exponentially up to the cap", () => {
    const b = new Backoff({ random: () => 0.999999 });
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays.slice(0, 6)).toEqual([1000, 2000, 4000, 8000, 16000, 20000]);
    expect(delays.slice(6)).toEqual([20000, 20000, 20000, 20000]);
  });

  it("never goes under the minimum", () => {
    const b = new Backoff({ random: () => 0 });
    for (let i = 0; i < 20; i++) expect(b.next()).toBe(500);
  });

  it("jitters over the whole window [min, ceiling]", () => {
    const values = [0.25, 0.5, 0.75];
    let i = 0;
    const b = new Backoff({ min: 100, max: 10000, random: () => values[i++ % 3] });
    // windows: [100, 200], [100, 400], [100, 800]
    expect([b.next(), b.next(), b.next()]).toEqual([125, 250, 625]);
  });

  it("stays within bounds for any random value and many attempts", () => {
    const b = new Backoff({ min: 500, max: 20000 });
    for (let n = 0; n < 200; n++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(20000);
    }
    expect(b.ceiling(10_000)).toBe(20000);
  });

  it("clamps a misbehaving random source", () => {
    const b = new Backoff({ random: () => 7 });
    expect(b.next()).toBe(1000);
    const c = new Backoff({ random: () => -3 });
    expect(c.next()).toBe(500);
  });

  it("reset() starts over from the first window", () => {
    const b = new Backoff({ random: () => 0.999999 });
    b.next();
    b.next();
    b.next();
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(1000);
  });

  it("rejects bounds that make no sense", () => {
    expect(() => new Backoff({ min: 10, max: 5 })).toThrow(RangeError);
    expect(() => new Backoff({ min: -1 })).toThrow(RangeError);
  });
});
