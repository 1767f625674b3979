/**
 * ComfyUI's jobs API (`GET /api/jobs`, `GET /api/jobs/{id}`): one record shape for a prompt whatever its state
 * (pending, in_progress, completed, failed, cancelled), made from the queue and the history as ComfyUI's
 * comfy_execution/jobs.py makes them, with its filters, sorting and pagination. Pure functions: app.ts routes.
 */
import type { UiOutput } from '@gategraph/core';
import type { HistoryEntry, QueueItem } from './store.ts';

export const JOB_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export type Job = Record<string, unknown> & { id: string; status: JobStatus };

/** Media kinds the ComfyUI frontend previews. */
const PREVIEWABLE = new Set(['images', 'video', 'audio', '3d', 'text']);
const TEXT_FILE = /\.(txt|md|json)$/i;
const THREE_D_FILE = /\.(obj|fbx|gltf|glb|usdz)$/i;

export interface JobsQuery {
  statuses?: JobStatus[];
  workflowId?: string;
  sortBy: 'created_at' | 'execution_duration';
  sortOrder: 'asc' | 'desc';
  limit?: number;
  offset: number;
}

/** The query of `GET /api/jobs`, or the message of ComfyUI's 400 for a bad one. */
export function parseJobsQuery(query: Record<string, unknown>): JobsQuery | string {
  const text = (name: string) => (typeof query[name] === 'string' ? (query[name] as string) : undefined);
  let statuses: JobStatus[] | undefined;
  const status = text('status');
  if (status) {
    const asked = status.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
    const invalid = asked.filter((s) => !(JOB_STATUSES as readonly string[]).includes(s));
    if (invalid.length) return `Invalid status value(s): ${invalid.join(', ')}. Valid values: ${JOB_STATUSES.join(', ')}`;
    statuses = asked as JobStatus[];
  }
  const sortBy = (text('sort_by') ?? 'created_at').toLowerCase();
  if (sortBy !== 'created_at' && sortBy !== 'execution_duration') return "sort_by must be 'created_at' or 'execution_duration'";
  const sortOrder = (text('sort_order') ?? 'desc').toLowerCase();
  if (sortOrder !== 'asc' && sortOrder !== 'desc') return "sort_order must be 'asc' or 'desc'";
  let limit: number | undefined;
  if (query.limit !== undefined) {
    if (!/^[+-]?\d+$/.test(String(query.limit))) return 'limit must be an integer';
    limit = Number(query.limit);
    if (limit <= 0) return 'limit must be a positive integer';
  }
  let offset = 0;
  if (query.offset !== undefined) {
    if (!/^[+-]?\d+$/.test(String(query.offset))) return 'offset must be an integer';
    offset = Math.max(0, Number(query.offset));
  }
  const workflowId = text('workflow_id');
  return { ...(statuses ? { statuses } : {}), ...(workflowId ? { workflowId } : {}), sortBy, sortOrder, ...(limit !== undefined ? { limit } : {}), offset };
}

/** `create_time` (set when queued) and the UI workflow's id, from a prompt's extra_data. */
function metadata(extraData: Record<string, unknown>): { create_time?: number; workflow_id?: string } {
  const out: { create_time?: number; workflow_id?: string } = {};
  if (typeof extraData.create_time === 'number') out.create_time = extraData.create_time;
  const info = extraData.extra_pnginfo as { workflow?: { id?: unknown } } | undefined;
  if (typeof info?.workflow?.id === 'string') out.workflow_id = info.workflow.id;
  return out;
}

/** A queued or running prompt as a job; with `includeWorkflow` (one job's details) its prompt and extra_data. */
export function queuedJob(item: QueueItem, status: 'pending' | 'in_progress', includeWorkflow = false): Job {
  return {
    id: item.promptId,
    status,
    priority: item.number,
    ...metadata(item.extraData),
    outputs_count: 0,
    previewable_outputs_count: 0,
    ...(includeWorkflow ? { workflow: { prompt: item.prompt, extra_data: item.extraData } } : {}),
  };
}

/** A finished prompt as a job; with `includeOutputs` (one job's details) its outputs, status and workflow too. */
export function finishedJob(id: string, entry: HistoryEntry, includeOutputs = false): Job {
  const [priority, , prompt, extraData] = entry.prompt;
  let start: number | undefined;
  let end: number | undefined;
  let error: Record<string, unknown> | undefined;
  let interrupted = false;
  for (const [event, data] of entry.status.messages) {
    const timestamp = typeof data.timestamp === 'number' ? data.timestamp : undefined;
    if (event === 'execution_start') start = timestamp;
    if (event === 'execution_success' || event === 'execution_error' || event === 'execution_interrupted') end = timestamp;
    if (event === 'execution_error') error = data;
    if (event === 'execution_interrupted') interrupted = true;
  }
  const status: JobStatus = entry.status.status_str === 'success' ? 'completed' : interrupted ? 'cancelled' : 'failed';
  const { count, preview } = outputsSummary(entry.outputs);
  return {
    id,
    status,
    priority,
    ...metadata(extraData),
    ...(start !== undefined ? { execution_start_time: start } : {}),
    ...(end !== undefined ? { execution_end_time: end } : {}),
    ...(error ? { execution_error: error } : {}),
    outputs_count: count,
    previewable_outputs_count: previewableCount(entry.outputs),
    ...(preview ? { preview_output: preview } : {}),
    ...(includeOutputs ? { outputs: entry.outputs, execution_status: entry.status, workflow: { prompt, extra_data: extraData } } : {}),
  };
}

type OutputItem = Record<string, unknown>;

function outputItems(outputs: Record<string, UiOutput>): Array<{ nodeId: string; mediaType: string; item: OutputItem }> {
  const found: Array<{ nodeId: string; mediaType: string; item: OutputItem }> = [];
  for (const [nodeId, output] of Object.entries(outputs)) {
    for (const [mediaType, items] of Object.entries(output as Record<string, unknown>)) {
      // 'animated' is a flag, not items; text strings are preview metadata, not outputs.
      if (mediaType === 'animated' || !Array.isArray(items)) continue;
      for (const item of items) if (item && typeof item === 'object') found.push({ nodeId, mediaType, item: item as OutputItem });
    }
  }
  return found;
}

function previewable(mediaType: string, item: OutputItem): boolean {
  if (PREVIEWABLE.has(mediaType)) return true;
  const format = typeof item.format === 'string' ? item.format : '';
  if (format.startsWith('video/') || format.startsWith('audio/')) return true;
  const filename = typeof item.filename === 'string' ? item.filename : '';
  return THREE_D_FILE.test(filename) || TEXT_FILE.test(filename);
}

/** How many output items, and the one to preview: a saved visual first, then any visual, then a text file. */
function outputsSummary(outputs: Record<string, UiOutput>): { count: number; preview?: OutputItem } {
  let saved: OutputItem | undefined;
  let visual: OutputItem | undefined;
  let text: OutputItem | undefined;
  const items = outputItems(outputs);
  for (const { nodeId, mediaType, item } of items) {
    if (!previewable(mediaType, item)) continue;
    const enriched = { ...item, nodeId, ...('mediaType' in item ? {} : { mediaType }) };
    const isText = mediaType === 'text' || TEXT_FILE.test(typeof item.filename === 'string' ? item.filename : '');
    if (isText) text ??= enriched;
    else if (item.type === 'output') saved ??= enriched;
    else visual ??= enriched;
  }
  const preview = saved ?? visual ?? text;
  return { count: items.length, ...(preview ? { preview } : {}) };
}

function previewableCount(outputs: Record<string, UiOutput>): number {
  return outputItems(outputs).filter(({ mediaType, item }) => previewable(mediaType, item)).length;
}

/** Every job of the queue and history the query asks for, sorted, and the page of it. */
export function listJobs(
  state: { running: QueueItem[]; pending: QueueItem[]; history: Array<[string, HistoryEntry]> },
  query: JobsQuery,
): { jobs: Job[]; total: number } {
  const wanted = new Set<JobStatus>(query.statuses ?? JOB_STATUSES);
  let jobs: Job[] = [];
  if (wanted.has('in_progress')) jobs.push(...state.running.map((item) => queuedJob(item, 'in_progress')));
  if (wanted.has('pending')) jobs.push(...state.pending.map((item) => queuedJob(item, 'pending')));
  if (wanted.has('completed') || wanted.has('failed') || wanted.has('cancelled')) {
    for (const [id, entry] of state.history) {
      const job = finishedJob(id, entry);
      if (wanted.has(job.status)) jobs.push(job);
    }
  }
  if (query.workflowId) jobs = jobs.filter((job) => job.workflow_id === query.workflowId);
  const key =
    query.sortBy === 'execution_duration'
      ? (job: Job) => (typeof job.execution_start_time === 'number' && typeof job.execution_end_time === 'number' ? job.execution_end_time - job.execution_start_time : 0)
      : (job: Job) => (typeof job.create_time === 'number' ? job.create_time : 0);
  const sign = query.sortOrder === 'desc' ? -1 : 1;
  // Stable: equal keys keep the queue's order, as Python's sorted() does.
  jobs = jobs.map((job, i) => ({ job, i })).sort((a, b) => sign * (key(a.job) - key(b.job)) || a.i - b.i).map((x) => x.job);
  const total = jobs.length;
  const page = jobs.slice(query.offset, query.limit !== undefined ? query.offset + query.limit : undefined);
  return { jobs: page, total };
}
