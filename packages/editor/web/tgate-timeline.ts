/**
 * TGATE made visible: GateSchedule, CacheCrossAttn, CacheSelfAttn and DeepCache nodes draw, under their
 * widgets, the step timeline the sampler will run: per step whether cross- and self-attention are computed,
 * computed and cached, or reused; whether the step runs the guided (two-pass) batch or one pass; and whether
 * the full UNet or DeepCache's shallow branch runs. The plan comes from packages/diffusion's planners, with the
 * step count of the connected KSampler, and is redrawn as widgets change.
 */
import type { EditorApp } from './app.ts';
import { LiteGraph } from './litegraph.ts';
import { isEditorNode, type EditorNode, type EditorWidget } from './node-state.ts';
import {
  combinePlans,
  planDeepCache,
  planTgate,
  summarizePlan,
  type DeepCacheOptions,
  type ExecutionPlan,
  type PlannedStep,
  type TgateOptions,
} from './planners.ts';

/** Node classes that shape the plan, and so draw it. */
export const TIMELINE_CLASSES = new Set(['GateSchedule', 'CacheCrossAttn', 'CacheSelfAttn', 'DeepCache']);

const DEFAULT_STEPS = 25;
const ROW_H = 14;
/** Height of the drawing: up to four rows, the step ticks, the legend and the summary line. */
const TIMELINE_H = 8 + 4 * ROW_H + 14 + 2 * 14 + 16 + 4;
const LABEL_W = 58;
const COLORS = {
  compute: '#546E7A',
  compute_cache: '#FFB300',
  reuse: '#26A69A',
  cfg: '#7E57C2',
  single: '#26A69A',
  full: '#546E7A',
  shallow: '#26A69A',
} as const;

interface Row {
  label: string;
  value(step: PlannedStep): keyof typeof COLORS;
}

const ROWS: Record<'cross' | 'self' | 'batch' | 'unet', Row> = {
  cross: { label: 'cross-attn', value: (s) => s.crossAttn },
  self: { label: 'self-attn', value: (s) => s.selfAttn },
  batch: { label: 'guidance', value: (s) => s.batch },
  unet: { label: 'UNet', value: (s) => s.unet },
};

export interface TimelineResult {
  plan?: ExecutionPlan;
  error?: string;
  rows: Row[];
  summary: string;
}

export function installTgateTimelines(app: EditorApp): void {
  app.timelineFor = (node) => timelineFor(app, node);
  app.extensions.push({
    name: 'gategraph.tgate-timeline',
    nodeCreated(node) {
      if (!TIMELINE_CLASSES.has(node.comfyClass)) return;
      addTimelineWidget(app, node);
    },
  });
}

function addTimelineWidget(app: EditorApp, node: EditorNode): void {
  const widget = {
    type: 'gg_timeline',
    name: 'timeline',
    value: null,
    serialize: false,
    options: { serialize: false },
    computeSize(width: number): [number, number] {
      return [width, TIMELINE_H];
    },
    draw(ctx: CanvasRenderingContext2D, drawn: EditorNode, width: number, y: number) {
      drawTimeline(ctx, timelineFor(app, drawn), width, y);
    },
    /** Hovering a step tells what runs there. `x`, `y` are node coordinates. */
    tooltipAt(x: number, y: number, hovered: EditorNode): string | undefined {
      const top = (widget as unknown as EditorWidget).last_y;
      if (top === undefined || y < top) return undefined;
      const { plan, error } = timelineFor(app, hovered);
      if (error || !plan) return error;
      const left = 12 + LABEL_W;
      const cellW = (hovered.size[0] - 24 - LABEL_W) / Math.max(1, plan.steps.length);
      const index = Math.floor((x - left) / cellW);
      const step = plan.steps[index];
      return step ? describeStep(step) : undefined;
    },
  };
  node.addCustomWidget(widget as never);
  const size = node.computeSize();
  node.setSize([Math.max(node.size[0], 340), Math.max(node.size[1], size[1])]);
  (widget as unknown as EditorWidget).tooltip =
    'The step plan: amber = computed and cached, teal = reused / one pass / shallow UNet, grey = computed as usual, purple = guided two-pass batch.';
}

/** The plan the sampler fed by this node will run, with the rows that matter for it. */
export function timelineFor(app: EditorApp, node: EditorNode): TimelineResult {
  const sampler = findSampler(app, node);
  const chain = sampler ? gatingNodesFeeding(app, sampler) : [node];
  if (!chain.includes(node)) chain.push(node);
  const steps = numberWidget(sampler, ['steps']) ?? numberWidget(node, ['steps']) ?? DEFAULT_STEPS;
  const tgateNodes = chain.filter((n) => n.comfyClass !== 'DeepCache');
  const deepNode = chain.find((n) => n.comfyClass === 'DeepCache');
  try {
    const tgateSettings = tgateNodes.length ? tgateOptions(tgateNodes, steps) : undefined;
    const tgate = tgateSettings ? planTgate(tgateSettings) : undefined;
    const deep = deepNode ? planDeepCache({ ...deepCacheOptions(deepNode, steps), ...(tgateSettings?.lcm ? { lcm: true } : {}) }) : undefined;
    const plan = tgate && deep ? combinePlans(tgate, deep) : (tgate ?? deep)!;
    const rows: Row[] = [];
    if (tgate) rows.push(ROWS.cross, ROWS.self, ROWS.batch);
    if (deep) rows.push(ROWS.unet);
    return { plan, rows, summary: summarize(plan, steps, sampler !== undefined) };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error), rows: [], summary: '' };
  }
}

function tgateOptions(nodes: EditorNode[], steps: number): TgateOptions {
  const options: TgateOptions = { steps };
  const schedule = nodes.find((n) => n.comfyClass === 'GateSchedule') ?? nodes[0]!;
  const gateStep = numberWidget(schedule, ['gate_step', 'gateStep']);
  const fraction = numberWidget(schedule, ['gate_fraction', 'start_at', 'gateFraction']);
  // GateSchedule's gate_step 0 means "use gate_fraction" (nodes-tgate's GateSchedule).
  if (gateStep !== undefined && gateStep > 0) options.gateStep = gateStep;
  else if (fraction !== undefined) options.gateFraction = fraction;
  const set = <K extends keyof TgateOptions>(key: K, value: TgateOptions[K] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set('spInterval', numberWidget(schedule, ['sp_interval', 'spInterval']));
  set('fiInterval', numberWidget(schedule, ['fi_interval', 'fiInterval']));
  set('warmUp', numberWidget(schedule, ['warm_up', 'warmUp']));
  const lcm = widget(schedule, ['lcm'])?.value;
  if (typeof lcm === 'boolean') options.lcm = lcm;
  const branch = widget(schedule, ['after_gate_branch', 'afterGateBranch'])?.value;
  if (branch === 'cond' || branch === 'uncond') options.afterGateBranch = branch;
  // Which caches are on follows from the nodes present (a lone GateSchedule shows TGATE's defaults).
  const classes = new Set(nodes.map((n) => n.comfyClass));
  if (classes.has('CacheCrossAttn') || classes.has('CacheSelfAttn')) {
    options.cacheCrossAttn = classes.has('CacheCrossAttn');
    options.cacheSelfAttn = classes.has('CacheSelfAttn') || booleanWidget(nodes, ['cache_self_attn', 'self_attn']) === true;
  }
  return options;
}

function deepCacheOptions(node: EditorNode, steps: number): DeepCacheOptions {
  const options: DeepCacheOptions = { steps };
  const interval = numberWidget(node, ['cache_interval', 'cacheInterval']);
  const branch = numberWidget(node, ['cache_branch_id', 'cacheBranchId']);
  const schedule = widget(node, ['schedule', 'mode'])?.value;
  const centre = numberWidget(node, ['centre', 'center']);
  const power = numberWidget(node, ['power']);
  if (interval !== undefined) options.cacheInterval = interval;
  if (branch !== undefined) options.cacheBranchId = branch;
  if (schedule === 'uniform' || schedule === 'non_uniform') options.schedule = schedule;
  if (centre !== undefined) options.centre = centre;
  if (power !== undefined) options.power = power;
  return options;
}

/** One step in words: "step 12: one pass (negative text); cross-attention reused; ...". */
export function describeStep(step: PlannedStep): string {
  const attn = { compute: 'computed', compute_cache: 'computed and cached', reuse: 'reused from the cache' } as const;
  const batch =
    step.batch === 'cfg' ? 'guided pair (negative + prompt)' : `one pass (${step.singleBranch === 'uncond' ? 'negative text' : 'prompt'})`;
  const mean = step.cacheMode === 'cfg_mean' && (step.crossAttn === 'compute_cache' || step.selfAttn === 'compute_cache') ? ' (cache = mean of the pair)' : '';
  const unet = step.unet === 'full' ? (step.deepCache === 'refresh' ? 'full UNet, deep feature kept' : 'full UNet') : 'shallow UNet on the cached deep feature';
  return [`step ${step.step}: ${batch}`, `cross-attention ${attn[step.crossAttn]}`, `self-attention ${attn[step.selfAttn]}${mean}`, unet].join('\n');
}

function summarize(plan: ExecutionPlan, steps: number, fromSampler: boolean): string {
  const summary = summarizePlan(plan);
  const parts: string[] = [];
  if (plan.tgate) {
    parts.push(
      summary.gateStepIndex === null
        ? 'TGATE off (see the node notes)'
        : `gate at step ${summary.gateStepIndex}: ${summary.crossReuseSteps} of ${steps} steps reuse cross-attn`,
    );
  }
  if (plan.deepCache) parts.push(`${summary.shallowSteps} shallow UNet step${summary.shallowSteps === 1 ? '' : 's'}`);
  if (!fromSampler) parts.push(`${steps} steps (connect a KSampler to use its steps)`);
  return parts.join(' · ');
}

function drawTimeline(ctx: CanvasRenderingContext2D, timeline: TimelineResult, width: number, y: number): void {
  const left = 12;
  const right = width - 12;
  ctx.save();
  ctx.fillStyle = '#1b1b1b';
  ctx.beginPath();
  ctx.roundRect(left - 4, y, right - left + 8, TIMELINE_H - 4, 6);
  ctx.fill();
  ctx.font = '11px Inter, "Segoe UI", Arial, sans-serif';
  ctx.textBaseline = 'alphabetic';
  ctx.textAlign = 'left';
  if (timeline.error || !timeline.plan) {
    ctx.fillStyle = '#FF6E6E';
    wrapText(ctx, timeline.error ?? 'no plan', left, y + 16, right - left, 13);
    ctx.restore();
    return;
  }
  const { plan, rows } = timeline;
  const n = plan.steps.length;
  const cellW = (right - left - LABEL_W) / Math.max(1, n);
  let rowY = y + 8;
  for (const row of rows) {
    ctx.fillStyle = '#999';
    ctx.fillText(row.label, left, rowY + ROW_H - 4);
    plan.steps.forEach((step, i) => {
      ctx.fillStyle = COLORS[row.value(step)];
      ctx.fillRect(left + LABEL_W + i * cellW, rowY, Math.max(1, cellW - (cellW > 4 ? 1 : 0)), ROW_H - 3);
    });
    rowY += ROW_H;
  }
  // Step ticks: first and last step; the gate line sits between the gate step and the first reusing step.
  ctx.fillStyle = '#777';
  ctx.fillText('0', left + LABEL_W, rowY + 9);
  ctx.textAlign = 'right';
  ctx.fillText(String(n - 1), right, rowY + 9);
  if (plan.tgate?.effective) {
    const gx = left + LABEL_W + plan.tgate.gateStep * cellW;
    ctx.strokeStyle = '#FFB300';
    ctx.beginPath();
    ctx.moveTo(gx, y + 6);
    ctx.lineTo(gx, rowY);
    ctx.stroke();
    ctx.textAlign = 'center';
    ctx.fillStyle = '#FFB300';
    ctx.fillText('gate', Math.min(Math.max(gx, left + LABEL_W + 24), right - 24), rowY + 9);
  }
  // Legend: what the colours mean.
  ctx.textAlign = 'left';
  let lx = left;
  let legendY = rowY + 16;
  for (const [color, label] of LEGEND) {
    const itemWidth = 12 + ctx.measureText(label).width;
    if (lx > left && lx + itemWidth > right) {
      lx = left;
      legendY += 14;
    }
    ctx.fillStyle = color;
    ctx.fillRect(lx, legendY, 9, 9);
    ctx.fillStyle = '#999';
    ctx.fillText(label, lx + 12, legendY + 8);
    lx += 12 + ctx.measureText(label).width + 10;
  }
  ctx.fillStyle = '#CCC';
  ctx.fillText(timeline.summary, left, legendY + 24, right - left);
  ctx.restore();
}

const LEGEND: [string, string][] = [
  [COLORS.compute, 'compute'],
  [COLORS.compute_cache, 'compute + cache'],
  [COLORS.reuse, 'reuse / 1 pass / shallow'],
  [COLORS.cfg, 'CFG pair'],
];

function wrapText(ctx: CanvasRenderingContext2D, text: string, x: number, y: number, maxWidth: number, lineHeight: number): void {
  let line = '';
  let lineY = y;
  for (const word of text.split(/\s+/)) {
    const candidate = line ? `${line} ${word}` : word;
    if (ctx.measureText(candidate).width > maxWidth && line) {
      ctx.fillText(line, x, lineY);
      lineY += lineHeight;
      line = word;
    } else line = candidate;
  }
  if (line) ctx.fillText(line, x, lineY);
}

/** The sampler this node's outputs lead to (breadth first through the graph), if any. */
function findSampler(app: EditorApp, start: EditorNode): EditorNode | undefined {
  const seen = new Set<number>([start.id]);
  const queue: EditorNode[] = [start];
  while (queue.length) {
    const node = queue.shift()!;
    for (const output of node.outputs ?? []) {
      for (const linkId of output.links ?? []) {
        const link = app.graph.links[linkId as unknown as number];
        const target = link ? app.graph.getNodeById(link.target_id) : null;
        if (!target || !isEditorNode(target) || seen.has(target.id)) continue;
        seen.add(target.id);
        if (widget(target, ['steps']) && /sampler/i.test(target.comfyClass)) return target;
        queue.push(target);
      }
    }
  }
  return undefined;
}

/** Every TGATE/DeepCache node upstream of the sampler. */
function gatingNodesFeeding(app: EditorApp, sampler: EditorNode): EditorNode[] {
  const found: EditorNode[] = [];
  const seen = new Set<number>([sampler.id]);
  const stack: EditorNode[] = [sampler];
  while (stack.length) {
    const node = stack.pop()!;
    for (const input of node.inputs ?? []) {
      if (input.link === null || input.link === undefined) continue;
      const link = app.graph.links[input.link];
      const origin = link ? app.graph.getNodeById(link.origin_id) : null;
      if (!origin || !isEditorNode(origin) || seen.has(origin.id)) continue;
      seen.add(origin.id);
      if (TIMELINE_CLASSES.has(origin.comfyClass)) found.push(origin);
      stack.push(origin);
    }
  }
  return found;
}

function widget(node: EditorNode | undefined, names: string[]): EditorWidget | undefined {
  return node?.widgets?.find((w) => names.includes(w.name));
}

function numberWidget(node: EditorNode | undefined, names: string[]): number | undefined {
  const value = widget(node, names)?.value;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function booleanWidget(nodes: EditorNode[], names: string[]): boolean | undefined {
  for (const node of nodes) {
    const value = widget(node, names)?.value;
    if (typeof value === 'boolean') return value;
  }
  return undefined;
}

