// `npm run inspect`: the local Stately inspector relay. Start it, then the service with
// RUNSTATE_INSPECT=ws://localhost:<port>; open http://localhost:<port> to watch the actors.
// The relay works offline; the page it serves embeds stately.ai/inspect, which needs internet.
import { createInspectorServer } from '@statelyai/inspect/server';

const port = Number(process.env.RUNSTATE_INSPECT_PORT ?? 8080);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`Expected \`RUNSTATE_INSPECT_PORT\` to be a port number, got ${JSON.stringify(process.env.RUNSTATE_INSPECT_PORT)}.`);
  process.exit(2);
}
const server = createInspectorServer({ port, autoOpen: false });
console.log(`Stately inspector relay on ws://localhost:${port}
Start the service with RUNSTATE_INSPECT=ws://localhost:${port} npm start
Open http://localhost:${port} to watch (the viewer itself loads stately.ai: it needs internet).`);
const stop = () => {
  server.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
