/**
 * A small line chart drawn straight into an IMAGE tensor ([1, H, W, 3] floats in 0..1), for GateAdvisor: no
 * canvas or font library. Axes, light grid lines, the curve with a dot per point, a dashed threshold line, a
 * marked vertical line, and numbers in a 3x5 pixel font (scaled) on the axes.
 */
import type { Tensor } from '@gategraph/diffusion';

type Rgb = readonly [number, number, number];

export interface LineChart {
  /** y values at x = 0, 1, ... (NaN = no point there). */
  values: readonly number[];
  /** x of values[0] (the chart's x axis shows step numbers). */
  firstX: number;
  /** Horizontal dashed line (threshold), in y units. */
  threshold?: number;
  /** Vertical line at this x (recommended gate). */
  marker?: number;
  /** y labels are shown as percentages of this (1 = values are fractions). */
  width?: number;
  height?: number;
}

const GLYPHS: Record<string, string> = {
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '111001111100111',
  '3': '111001111001111',
  '4': '101101111001001',
  '5': '111100111001111',
  '6': '111100111101111',
  '7': '111001010010010',
  '8': '111101111101111',
  '9': '111101111001111',
  '%': '101001010100101',
  '.': '000000000000010',
};

class Raster {
  readonly data: Float32Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Float32Array(width * height * 3).fill(1);
  }
  set(x: number, y: number, c: Rgb): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
    const o = (yi * this.width + xi) * 3;
    this.data[o] = c[0];
    this.data[o + 1] = c[1];
    this.data[o + 2] = c[2];
  }
  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }
  /** A line `thick` pixels wide; `dash` > 0 draws dash-long segments with equal gaps. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1, dash = 0): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    const r = Math.floor(thick / 2);
    for (let k = 0; k <= n; k++) {
      if (dash > 0 && Math.floor(k / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * k) / n;
      const y = y0 + ((y1 - y0) * k) / n;
      this.rect(Math.round(x) - r, Math.round(y) - r, thick, thick, c);
    }
  }
  /** Text in the 3x5 font, `scale` pixels per dot; (x, y) is the top-left corner. Returns the width drawn. */
  text(s: string, x: number, y: number, c: Rgb, scale = 2): number {
    let cx = x;
    for (const ch of s) {
      const g = GLYPHS[ch];
      if (g) for (let j = 0; j < 5; j++) for (let i = 0; i < 3; i++) if (g[j * 3 + i] === '1') this.rect(cx + i * scale, y + j * scale, scale, scale, c);
      cx += 4 * scale;
    }
    return cx - x;
  }
}

const AXIS: Rgb = [0.1, 0.1, 0.1];
const GRID: Rgb = [0.88, 0.88, 0.88];
const CURVE: Rgb = [0.15, 0.35, 0.8];
const THRESHOLD: Rgb = [0.85, 0.2, 0.15];
const MARKER: Rgb = [0.1, 0.6, 0.25];

function percentLabel(v: number): string {
  const p = v * 100;
  return p >= 10 || p === 0 ? `${Math.round(p)}%` : `${p.toFixed(1)}%`;
}

/** Draws the chart; the y axis starts at 0 and shows values as percentages. */
export function drawLineChart(chart: LineChart): Tensor {
  const W = chart.width ?? 512;
  const H = chart.height ?? 256;
  const img = new Raster(W, H);
  const left = 48;
  const right = W - 12;
  const top = 12;
  const bottom = H - 28;
  const finite = chart.values.filter(Number.isFinite);
  const yMax = Math.max(1e-6, ...finite, chart.threshold ?? 0) * 1.1;
  const n = chart.values.length;
  const lastX = chart.firstX + Math.max(1, n - 1);
  const px = (x: number) => left + ((x - chart.firstX) / (lastX - chart.firstX)) * (right - left);
  const py = (y: number) => bottom - (y / yMax) * (bottom - top);

  for (let k = 1; k <= 4; k++) {
    const v = (yMax / 1.1) * (k / 4);
    img.line(left, py(v), right, py(v), GRID);
    const label = percentLabel(v);
    img.text(label, left - 6 - label.length * 8, py(v) - 5, AXIS);
  }
  img.line(left, top, left, bottom, AXIS, 2);
  img.line(left, bottom, right, bottom, AXIS, 2);
  const tickEvery = n > 40 ? 10 : 5;
  for (let x = chart.firstX; x <= lastX; x++) {
    const major = x % tickEvery === 0;
    img.line(px(x), bottom, px(x), bottom + (major ? 6 : 3), AXIS);
    if (major) {
      const label = String(x);
      img.text(label, px(x) - label.length * 4, bottom + 9, AXIS);
    }
  }
  if (chart.threshold !== undefined) img.line(left, py(chart.threshold), right, py(chart.threshold), THRESHOLD, 1, 4);
  if (chart.marker !== undefined && chart.marker >= chart.firstX && chart.marker <= lastX) {
    img.line(px(chart.marker), top, px(chart.marker), bottom, MARKER, 2);
  }
  let prev: [number, number] | undefined;
  chart.values.forEach((v, i) => {
    if (!Number.isFinite(v)) {
      prev = undefined;
      return;
    }
    const point: [number, number] = [px(chart.firstX + i), py(v)];
    if (prev) img.line(prev[0], prev[1], point[0], point[1], CURVE, 2);
    img.rect(point[0] - 2, point[1] - 2, 5, 5, CURVE);
    prev = point;
  });
  return { data: img.data, shape: [1, H, W, 3] };
}
