#!/usr/bin/env node
// The `runstate` command. The service is TypeScript run through tsx, as `npm start` runs it:
// importing tsx first registers its loader, so the CLI and any `.ts` pipeline module load.
import 'tsx';

// `runstate runs | head`: a reader that leaves is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const { run } = await import('../service/cli/main.ts');
const argv = process.argv.slice(2);
const code = await run(argv);
// `serve` keeps running (and exits on its signals); every other command is done.
if (argv.find((a) => !a.startsWith('-')) !== 'serve') process.exit(code);
