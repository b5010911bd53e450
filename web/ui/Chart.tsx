'use client';
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';

export type ChartKind = 'line-time' | 'bars';

function cssVar(el: Element, name: string, fallback: string): string {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

/**
 * A chart drawn by uPlot: `line-time` (x in epoch seconds) or `bars` (x a number). The canvas
 * is hidden from screen readers; `summary` says the same in words.
 */
export function Chart({ data, kind, label, yLabel, xLabel, summary, height = 180 }: { data: [number[], number[]]; kind: ChartKind; label: string; yLabel: string; xLabel: string; summary: string; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = useRef<string>('');

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const dark = window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
    const key = `${kind}:${dark}`;
    if (plot.current && shape.current === key) {
      plot.current.setData(data);
      return;
    }
    plot.current?.destroy();
    shape.current = key;
    const fg = cssVar(el, '--muted', '#596270');
    const grid = cssVar(el, '--line', '#dde1e6');
    const stroke = cssVar(el, '--run', '#2f6fed');
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height,
      legend: { show: false },
      cursor: { show: true, drag: { x: false, y: false } },
      scales: { x: { time: kind === 'line-time' } },
      axes: [{ ...axis, label: xLabel }, { ...axis, label: yLabel }],
      series: [
        {},
        kind === 'bars'
          ? { label: yLabel, stroke, fill: `${stroke}55`, paths: uPlot.paths.bars!({ size: [0.9, 40] }), points: { show: false } }
          : { label: yLabel, stroke, width: 2, fill: `${stroke}22`, points: { show: false } },
      ],
    };
    plot.current = new uPlot(opts, data, el);
  }, [data, kind, height, xLabel, yLabel]);

  // Follows the box's width (a narrow screen, a resized window).
  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(240, el.clientWidth), height }));
    ro.observe(el);
    return () => ro.disconnect();
  }, [height]);

  useEffect(() => () => plot.current?.destroy(), []);

  return (
    <figure className="plot" aria-label={label}>
      <figcaption>{label}</figcaption>
      <div ref={box} aria-hidden="true" />
      <p className="sr-only">{summary}</p>
    </figure>
  );
}
