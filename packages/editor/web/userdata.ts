/**
 * Workflows kept on the server, through ComfyUI's userdata routes: GET /userdata?dir=workflows lists them,
 * GET/POST /userdata/workflows%2F<name> reads and writes one (the path is a single encoded segment).
 */
import type { Api } from './api.ts';
import { ApiError } from './api.ts';

const DIR = 'workflows';

export async function listServerWorkflows(api: Api): Promise<string[]> {
  const response = await api.fetch(`/userdata?dir=${DIR}&recurse=true&split=false`);
  // ComfyUI answers 404 while the folder does not exist yet: no workflows saved.
  if (response.status === 404) return [];
  if (!response.ok) throw new ApiError(`Listing the server's workflows failed: HTTP ${response.status}`, response.status);
  const files = (await response.json()) as unknown;
  return Array.isArray(files) ? files.filter((f): f is string => typeof f === 'string' && f.endsWith('.json')).sort() : [];
}

export async function loadServerWorkflow(api: Api, name: string): Promise<unknown> {
  return api.json<unknown>(`/userdata/${encodeURIComponent(`${DIR}/${name}`)}`);
}

export async function saveServerWorkflow(api: Api, name: string, workflow: unknown, overwrite = true): Promise<void> {
  const response = await api.fetch(`/userdata/${encodeURIComponent(`${DIR}/${name}`)}?overwrite=${overwrite}&full_info=true`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(workflow),
  });
  if (response.status === 409) throw new ApiError(`A workflow named ${name} already exists on the server`, 409);
  if (response.status === 404) {
    throw new ApiError('This server has no /userdata routes, so workflows cannot be saved on it; use "Save file" instead', 404);
  }
  if (!response.ok) throw new ApiError(`Saving ${name} on the server failed: HTTP ${response.status} ${await response.text()}`, response.status);
}

export async function deleteServerWorkflow(api: Api, name: string): Promise<void> {
  const response = await api.fetch(`/userdata/${encodeURIComponent(`${DIR}/${name}`)}`, { method: 'DELETE' });
  if (!response.ok && response.status !== 404) throw new ApiError(`Deleting ${name} on the server failed: HTTP ${response.status}`, response.status);
}
