// Waiting on real processes on real time: poll a condition until it holds, within a bound,
// and fail saying what was awaited. Not a sleep: it returns as soon as the probe gives a value.

export type Probe<T> = () => Promise<T | undefined | false | null> | T | undefined | false | null;

/** Polls `probe` every 25 ms until it returns something truthy (that value); fails after `ms`. */
export async function until<T>(what: string, probe: Probe<T>, ms = 30_000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
