// A real store with faults injected around it, as a database that goes away would cause them:
// every call refused while `refuse(true)`, or the next commits refused or written and then
// "cut" before the answer. Not a mock: what is written is written by the real store.
import type { CommitBatch, CommitResult, Store } from '../../service/store/store.js';

export type CommitFault = 'refuse' | 'land-then-cut';

export function faultyStore<S extends Store>(store: S) {
  const faults: CommitFault[] = [];
  let refusing = false;
  const cut = () => new Error('Connection terminated unexpectedly');
  const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      const fn = (value as (...a: unknown[]) => unknown).bind(target);
      if (prop === 'close' || prop === 'kind') return fn;
      if (prop === 'commit') {
        return async (runId: string, batch: CommitBatch): Promise<CommitResult> => {
          if (refusing) throw refused();
          const fault = faults.shift();
          if (fault === 'refuse') throw cut();
          const res = await target.commit(runId, batch);
          if (fault === 'land-then-cut') throw cut();
          return res;
        };
      }
      return async (...args: unknown[]) => {
        if (refusing) throw refused();
        return fn(...args);
      };
    },
  });
  return {
    store: wrapped,
    next: (...f: CommitFault[]) => faults.push(...f),
    refuse: (on: boolean) => (refusing = on),
  };
}
