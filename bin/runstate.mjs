#!/usr/bin/env node
// The `runstate` command (`npm start` runs `runstate serve`). runstate is TypeScript run
// through tsx: importing tsx first registers its loader, so the CLI, the service and any
// `.ts` pipeline module load.
import 'tsx';

// `runstate runs | head`: a reader that leaves is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const { run } = await import('../service/cli/main.ts');
const code = await run(process.argv.slice(2));
// `serve` keeps running (and exits on its signals); every other command is done.
if (code !== 'serving') process.exit(code);
