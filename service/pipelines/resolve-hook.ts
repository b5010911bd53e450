// A module resolution hook (node:module `register`): a pipeline module anywhere on disk that
// imports `runstate` gets this service's package entry, whether or not a node_modules above
// it has one. Runs in Node's hooks thread; registered by service/pipelines/resolve.ts.
import type { ResolveHook } from 'node:module';

let entry = '';

export function initialize(data: { entry: string }): void {
  entry = data.entry;
}

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  // Through the rest of the chain, so the TypeScript loader (tsx) still sees the entry.
  return nextResolve(specifier === 'runstate' ? entry : specifier, context);
};
