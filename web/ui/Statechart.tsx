import type { MachineGraph } from '../../machines/graph.js';

const W = 360;
const H = 260;
const R = 100;

/**
 * A machine drawn from its definition (no outside service): states on a circle, every
 * transition an arrow, the active state filled. The transitions are also listed, in words,
 * below the drawing.
 */
export function Statechart({ graph, active, title }: { graph: MachineGraph; active: string | null; title: string }) {
  const n = graph.states.length;
  const pos = new Map(graph.states.map((s, i) => {
    const a = (2 * Math.PI * i) / n - Math.PI / 2;
    return [s.name, { x: W / 2 + R * 1.35 * Math.cos(a), y: H / 2 + R * Math.sin(a) }];
  }));
  const edges = [...new Map(graph.transitions.filter((t) => t.from !== t.to).map((t) => [`${t.from}>${t.to}`, t])).values()];
  return (
    <figure className="chart" aria-label={`${title} statechart`}>
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={`${title}: ${active ?? 'not started'}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" className="sc-arrow" />
          </marker>
        </defs>
        {edges.map((t) => {
          const a = pos.get(t.from)!;
          const b = pos.get(t.to)!;
          // Stop short of the target's label so the arrowhead shows.
          const dx = b.x - a.x;
          const dy = b.y - a.y;
          const len = Math.hypot(dx, dy) || 1;
          return <line key={`${t.from}>${t.to}`} x1={a.x + (dx / len) * 22} y1={a.y + (dy / len) * 12} x2={b.x - (dx / len) * 30} y2={b.y - (dy / len) * 14} className="sc-edge" markerEnd="url(#arrow)" />;
        })}
        {graph.states.map((s) => {
          const p = pos.get(s.name)!;
          const on = s.name === active;
          return (
            <g key={s.name} data-state-node={s.name} data-active={on ? 'true' : 'false'}>
              <rect x={p.x - 40} y={p.y - 11} width={80} height={22} rx={11} className={on ? 'sc-node sc-on' : 'sc-node'} />
              <text x={p.x} y={p.y + 4} textAnchor="middle" fontSize="10" className={on ? 'sc-label sc-on' : 'sc-label'}>
                {s.name}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
