// OpenTelemetry for runs (OTEL_EXPORTER_OTLP_ENDPOINT): a span per run, per stage and per item
// attempt, exported over OTLP/HTTP. The SDK is imported only when the variable is set, so a
// service without it loads none of it and its runs pay one `?.` per hook.
import type { Context, Span, Tracer } from '@opentelemetry/api';
import type { RunRecord } from '../store/store.js';
import type { AttemptSpan, RunSpans, RunTelemetry } from './telemetry.js';
import { parseTraceParent } from './traceparent.js';

export interface OtelOptions {
  /** The OTLP/HTTP traces URL (…/v1/traces); null: telemetry off, nothing created. */
  tracesUrl: string | null;
  /** [serviceName=runstate] the resource's service.name. */
  serviceName?: string;
  /** Headers for the exporter; unset, it reads OTEL_EXPORTER_OTLP_HEADERS itself. */
  headers?: Record<string, string>;
}

/** The attribute names, one place: the run's, the stage's, the item's. */
export const ATTR = {
  runId: 'runstate.run_id',
  accountId: 'runstate.account_id',
  siteId: 'runstate.site_id',
  pipeline: 'runstate.pipeline',
  trigger: 'runstate.trigger',
  resumed: 'runstate.resumed',
  stage: 'runstate.stage',
  stageName: 'runstate.stage_name',
  itemId: 'runstate.item_id',
  attempt: 'runstate.attempt',
  outcome: 'runstate.outcome',
} as const;

/** Telemetry for the service, or null when `tracesUrl` is null (then no SDK module is even loaded). */
export async function createTelemetry(options: OtelOptions): Promise<RunTelemetry | null> {
  if (options.tracesUrl === null) return null;
  const [api, sdk, exporter, resources, semconv] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({ [semconv.ATTR_SERVICE_NAME]: options.serviceName ?? 'runstate' }),
    spanProcessors: [
      new sdk.BatchSpanProcessor(new exporter.OTLPTraceExporter({ url: options.tracesUrl, ...(options.headers ? { headers: options.headers } : {}) }), {
        scheduledDelayMillis: 1000,
      }),
    ],
  });
  // Not registered as the global provider: the service's spans go where its settings say, and a
  // pipeline's own instrumentation keeps whatever global it sets up.
  const tracer = provider.getTracer('runstate');

  const parentOf = (record: RunRecord): Context => {
    const tp = parseTraceParent(record.traceParent);
    if (!tp) return api.ROOT_CONTEXT;
    return api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: tp.traceId, spanId: tp.spanId, traceFlags: tp.flags, isRemote: true });
  };

  const fail = (span: Span, error: string | null | undefined) => {
    if (error === null || error === undefined) return;
    span.recordException({ name: 'Error', message: error });
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: error });
  };

  return {
    runHosted(record, resumed) {
      return new OtelRunSpans(api, tracer, record, parentOf(record), resumed, fail);
    },
    async shutdown() {
      await provider.shutdown();
    },
  };
}

type Api = typeof import('@opentelemetry/api');

class OtelRunSpans implements RunSpans {
  readonly #api: Api;
  readonly #tracer: Tracer;
  readonly #record: RunRecord;
  readonly #parent: Context;
  readonly #fail: (span: Span, error: string | null | undefined) => void;
  readonly #base: Record<string, string | boolean>;
  #run: Span | undefined;
  #runContext: Context;
  readonly #stages = new Map<number, { span: Span; context: Context }>();

  constructor(api: Api, tracer: Tracer, record: RunRecord, parent: Context, resumed: boolean, fail: (span: Span, error: string | null | undefined) => void) {
    this.#api = api;
    this.#tracer = tracer;
    this.#record = record;
    this.#parent = parent;
    this.#fail = fail;
    this.#base = {
      [ATTR.runId]: record.runId,
      [ATTR.accountId]: record.accountId,
      [ATTR.siteId]: record.siteId,
      [ATTR.pipeline]: record.pipeline,
    };
    this.#runContext = parent;
    this.#startRun(resumed);
  }

  #startRun(resumed: boolean): void {
    this.#run = this.#tracer.startSpan(
      `run ${this.#record.pipeline}`,
      { attributes: { ...this.#base, [ATTR.trigger]: this.#record.trigger, [ATTR.resumed]: resumed } },
      this.#parent,
    );
    this.#runContext = this.#api.trace.setSpan(this.#parent, this.#run);
  }

  runActive(): void {
    if (!this.#run) this.#startRun(true);
  }

  stageActive(stage: number, name: string): void {
    if (this.#stages.has(stage)) return;
    const span = this.#tracer.startSpan(
      `stage ${stage} ${name}`,
      { attributes: { ...this.#base, [ATTR.stage]: stage, [ATTR.stageName]: name } },
      this.#runContext,
    );
    this.#stages.set(stage, { span, context: this.#api.trace.setSpan(this.#runContext, span) });
  }

  stageEnded(stage: number, state: string, error: string | null): void {
    const open = this.#stages.get(stage);
    if (!open) return;
    this.#stages.delete(stage);
    open.span.setAttribute(ATTR.outcome, state);
    if (state === 'failed') this.#fail(open.span, error ?? 'stage failed');
    open.span.end();
  }

  attempt(stage: number, itemId: string | number, attempt: number): AttemptSpan {
    const parent = this.#stages.get(stage)?.context ?? this.#runContext;
    const span = this.#tracer.startSpan(
      `item ${String(itemId)}`,
      { attributes: { ...this.#base, [ATTR.stage]: stage, [ATTR.itemId]: String(itemId), [ATTR.attempt]: attempt } },
      parent,
    );
    return {
      end: (outcome, error) => {
        span.setAttribute(ATTR.outcome, outcome);
        if (outcome === 'error') this.#fail(span, error ?? 'item failed');
        span.end();
      },
    };
  }

  runEnded(state: string, error: string | null): void {
    for (const stage of [...this.#stages.keys()]) this.stageEnded(stage, state === 'failed' ? 'interrupted' : state, null);
    const run = this.#run;
    if (!run) return;
    this.#run = undefined;
    run.setAttribute(ATTR.outcome, state);
    if (state === 'failed') this.#fail(run, error ?? 'run failed');
    run.end();
  }

  stop(): void {
    for (const stage of [...this.#stages.keys()]) this.stageEnded(stage, 'interrupted', null);
    if (this.#run) {
      this.#run.setAttribute(ATTR.outcome, 'interrupted');
      this.#run.end();
      this.#run = undefined;
    }
  }
}
