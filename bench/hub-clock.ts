// One clock for every process of the hub bench. `performance.timeOrigin + performance.now()`
// can differ between two processes by however far each sampled the wall clock at start;
// CLOCK_MONOTONIC (what `process.hrtime` reads) is one clock for the whole machine, so an
// event stamped in the server and received in the client process compare exactly.

/** Milliseconds on the machine's monotonic clock. */
export function monoMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}
