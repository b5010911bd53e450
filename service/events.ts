// The one event vocabulary of a run (docs/protocol.md, "Events"): every event the service
// appends, what external engines' runs store, the constructors that build them, and the
// `stage_<n>` machine names. The engine, the trace files, the metrics, the ingest doors and
// the hub read events through these types, never by string-and-cast.

/** The commands a run takes (docs/api.md); which ones each state allows is engine/commands.ts. */
export const COMMANDS = ['pause', 'resume', 'cancel', 'retry', 'close', 'approve', 'reject', 'retry_failed'] as const;
export type Command = (typeof COMMANDS)[number];

export function isCommand(value: unknown): value is Command {
  return typeof value === 'string' && (COMMANDS as readonly string[]).includes(value);
}

/** An item as events name it. */
export interface ItemRef {
  id: string | number;
  title: string;
}

/** Fields every event carries before it is appended. */
interface Stamped {
  /** ISO 8601, from the service's clock. */
  timestamp: string;
}

/** Events of an external engine's run keep the idempotency key they were sent with. */
interface Keyed {
  event_id?: string;
}

export interface RunStartedEvent extends Stamped {
  event: 'run_started';
  trigger: string;
  /** External runs: the engine's machine. */
  machine_name?: string;
}

export interface Transition {
  /** null when an external engine does not say where it came from. */
  from_state: string | null;
  to_state: string;
  event_trigger: string;
  /** Seconds since the epoch, with fractions. */
  timestamp: number;
}

/** One transition of one machine: `run`, `stage_<n>`, or an external engine's machine. */
export interface StateChangeEvent extends Stamped, Keyed {
  event: 'state_change';
  machine_name: string;
  event_type: 'state_change';
  payload: Transition;
}

export interface StageStartEvent extends Stamped {
  event: 'stage_start';
  stage: number;
  stage_name: string;
  total_items: number;
}

export interface StageItemProcessedEvent extends Stamped, Keyed {
  event: 'stage_item_processed';
  stage: number;
  processed: number;
  total: number;
  item: ItemRef;
  /** How long the item's last attempt took (ms), for the service's own runs. */
  duration_ms?: number;
  /** External runs: the engine's machine that reported it. */
  machine_name?: string;
}

export interface StageItemFailedEvent extends Stamped {
  event: 'stage_item_failed';
  stage: number;
  processed: number;
  total: number;
  item: ItemRef;
  attempts: number;
  error: string | null;
  /** How long the item's last attempt took (ms). */
  duration_ms?: number;
}

export interface StageCompleteEvent extends Stamped {
  event: 'stage_complete';
  stage: number;
  processed_count: number;
  failed_count: number;
  /** `2m 5s` */
  time_elapsed: string;
  credits_used: number;
}

export interface ActivityLogEvent extends Stamped, Keyed {
  event: 'activity_log';
  message: string;
  /** The stage that logged it, for the service's own runs. */
  stage?: number;
  /** External runs: the engine's machine that logged it. */
  machine_name?: string;
}

export interface CommandEvent extends Stamped {
  event: 'command';
  command: Command;
  /** Who sent it: the token's name. */
  by: string;
  reason?: string;
}

/** Every event of a run: the discriminated union, by `event`. */
export type RunEvent =
  | RunStartedEvent
  | StateChangeEvent
  | StageStartEvent
  | StageItemProcessedEvent
  | StageItemFailedEvent
  | StageCompleteEvent
  | ActivityLogEvent
  | CommandEvent;

export type EventName = RunEvent['event'];
export type EventOf<N extends EventName> = Extract<RunEvent, { event: N }>;

/** What the log adds when it appends an event. */
export interface Sequenced {
  run_id: string;
  /** Per run, 1, 2, 3, … gap-free. */
  seq: number;
}

/** An event as the engine hands it to the store: everything but `run_id` and `seq`, which the store assigns. */
export type NewEvent = RunEvent & { run_id?: undefined; seq?: undefined };

/** An event as stored and broadcast; narrow it by `event`. */
export type StoredEvent<N extends EventName = EventName> = EventOf<N> & Sequenced;

/** The fields a constructor takes: the event's own, without `event`, `timestamp` or what is fixed. */
type Fields<E extends RunEvent, Fixed extends string = never> = Omit<E, 'event' | 'timestamp' | Fixed>;

/** Builds events; each takes the event's fields and its timestamp (ISO 8601). */
export const events = {
  runStarted: (f: Fields<RunStartedEvent>, timestamp: string): RunStartedEvent => ({ event: 'run_started', ...f, timestamp }),
  stateChange: (f: Omit<StateChangeEvent, 'event' | 'timestamp' | 'event_type'>, timestamp: string): StateChangeEvent => ({
    event: 'state_change',
    ...withoutPayload(f),
    event_type: 'state_change',
    payload: f.payload,
    timestamp,
  }),
  stageStart: (f: Fields<StageStartEvent>, timestamp: string): StageStartEvent => ({ event: 'stage_start', ...f, timestamp }),
  itemProcessed: (f: Fields<StageItemProcessedEvent>, timestamp: string): StageItemProcessedEvent => ({
    event: 'stage_item_processed',
    ...f,
    timestamp,
  }),
  itemFailed: (f: Fields<StageItemFailedEvent>, timestamp: string): StageItemFailedEvent => ({ event: 'stage_item_failed', ...f, timestamp }),
  stageComplete: (f: Fields<StageCompleteEvent>, timestamp: string): StageCompleteEvent => ({ event: 'stage_complete', ...f, timestamp }),
  activityLog: (f: Fields<ActivityLogEvent>, timestamp: string): ActivityLogEvent => ({ event: 'activity_log', ...f, timestamp }),
  /** A `reason` that is empty or absent is left out. */
  command: (f: { command: Command; by: string; reason?: string | undefined }, timestamp: string): CommandEvent => ({
    event: 'command',
    command: f.command,
    by: f.by,
    ...(f.reason ? { reason: f.reason } : {}),
    timestamp,
  }),
};

/** Keeps a state_change's fields in the order of docs/protocol.md: machine_name, event_type, payload. */
function withoutPayload<T extends { payload: unknown }>(f: T): Omit<T, 'payload'> {
  const { payload: _payload, ...rest } = f;
  return rest;
}

/** The run machine's name in `state_change` events. */
export const RUN_MACHINE = 'run';

/** `stage_<n>`: a stage machine's name in `state_change` events. */
export function stageMachineName(stage: number): `stage_${number}` {
  return `stage_${stage}`;
}

/** The stage number of a `stage_<n>` machine name; undefined for any other name. */
export function stageOf(machineName: string): number | undefined {
  const m = /^stage_([1-9]\d*)$/.exec(machineName);
  return m ? Number(m[1]) : undefined;
}

/** The stage an event is about, if any: its `stage` field, or the stage machine it comes from. */
export function stageOfEvent(e: RunEvent): number | undefined {
  if ('stage' in e && typeof e.stage === 'number') return e.stage;
  return e.event === 'state_change' ? stageOf(e.machine_name) : undefined;
}

/** The state the run machine entered, when the event is one of its transitions. */
export function runEnteredState(e: RunEvent): string | undefined {
  return e.event === 'state_change' && e.machine_name === RUN_MACHINE ? e.payload.to_state : undefined;
}
