/**
 * The server's ComfyUI-compatible API, as the editor uses it. `api` is an EventTarget (the extension contract
 * calls it `app.api`): every websocket message is dispatched as a CustomEvent named after its `type` with the
 * message's `data` as `detail`; binary preview frames are dispatched as `b_preview` with a Blob (ComfyUI's
 * name). Connection changes are `reconnecting` / `reconnected`.
 */
import { askForToken, storedToken, storeToken } from './token.ts';

export interface PromptResponse {
  prompt_id: string;
  number: number;
  node_errors: Record<string, NodeError>;
}

export interface NodeErrorDetail {
  type: string;
  message: string;
  details?: string;
  extra_info?: { input_name?: string; input_config?: unknown; received_value?: unknown; [key: string]: unknown };
}

export interface NodeError {
  errors: NodeErrorDetail[];
  dependent_outputs?: string[];
  class_type?: string;
}

export interface PromptErrorBody {
  error: { type: string; message: string; details?: string; extra_info?: Record<string, unknown> };
  node_errors: Record<string, NodeError>;
}

/** A 400 from POST /prompt: the prompt was refused; `body` says why, per node. */
export class PromptRejectedError extends Error {
  constructor(readonly body: PromptErrorBody) {
    super(body.error?.message ?? 'The server refused the prompt');
  }
}

/** Any other failed request, with the server's message when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface ImageRef {
  filename: string;
  subfolder?: string;
  type?: string;
}

/** Binary websocket frame types (u32 big-endian first word). */
const BINARY_PREVIEW_IMAGE = 1;

export class Api extends EventTarget {
  /** Identifies this tab to the server: messages about our prompts come to this id only. */
  readonly clientId: string;
  #socket: WebSocket | undefined;
  #closed = false;
  #retry = 0;

  constructor(readonly base = '') {
    super();
    this.clientId = sessionStorage.getItem('gategraph.clientId') ?? crypto.randomUUID();
    sessionStorage.setItem('gategraph.clientId', this.clientId);
  }

  /** An absolute API URL; `withToken` adds `?token=` for places that cannot send headers. */
  url(path: string, withToken = false): string {
    const url = new URL(this.base + path, location.href);
    const token = storedToken();
    if (withToken && token) url.searchParams.set('token', token);
    return url.toString();
  }

  /** fetch with the token; on 401 asks the user for the token once and retries. */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(init.headers);
      const token = storedToken();
      if (token) headers.set('Authorization', `Bearer ${token}`);
      const response = await fetch(this.url(path), { ...init, headers });
      if (response.status !== 401 || attempt > 2) return response;
      const message = await errorMessage(response);
      if (token) storeToken(undefined);
      const entered = await askForToken(
        token ? `The server did not accept the stored token. ${message}` : `This server needs an access token. ${message}`,
      );
      if (!entered) return response;
      if (attempt === 0) this.reconnect();
    }
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.fetch(path, init);
    if (!response.ok) throw new ApiError(`${init.method ?? 'GET'} ${path} failed: ${await errorMessage(response)}`, response.status);
    return (await response.json()) as T;
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  }

  objectInfo(): Promise<Record<string, import('./object-info.ts').ObjectInfoEntry>> {
    return this.json('/object_info');
  }

  /** Queues an API prompt; throws PromptRejectedError with the node errors on 400. */
  async queuePrompt(prompt: unknown, workflow: unknown, options: { front?: boolean } = {}): Promise<PromptResponse> {
    const response = await this.fetch('/prompt', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        prompt,
        client_id: this.clientId,
        extra_data: { extra_pnginfo: { workflow } },
        ...(options.front ? { front: true } : {}),
      }),
    });
    if (response.status === 400) {
      const body = (await response.json()) as PromptErrorBody;
      throw new PromptRejectedError(body);
    }
    if (!response.ok) throw new ApiError(`Queueing failed: ${await errorMessage(response)}`, response.status);
    return (await response.json()) as PromptResponse;
  }

  /** GET /view URL of an output image (with the token: it is used as <img src>). */
  viewUrl(image: ImageRef): string {
    const params = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder ?? '', type: image.type ?? 'output' });
    return this.url(`/view?${params}`, true);
  }

  /** Opens the websocket and keeps it open (reconnecting with back-off) until `close`. */
  connect(): void {
    this.#closed = false;
    this.#open();
  }

  close(): void {
    this.#closed = true;
    this.#socket?.close();
  }

  reconnect(): void {
    this.#socket?.close();
  }

  #open(): void {
    const url = new URL(this.url(`/ws?clientId=${encodeURIComponent(this.clientId)}`, true));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    this.#socket = socket;
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
      if (this.#retry > 0) this.dispatchEvent(new CustomEvent('reconnected'));
      this.#retry = 0;
    });
    socket.addEventListener('message', (event) => this.#onMessage(event));
    socket.addEventListener('close', () => {
      if (this.#socket !== socket || this.#closed) return;
      this.#retry++;
      this.dispatchEvent(new CustomEvent('reconnecting'));
      // A refused upgrade (401) looks like a close before open: check the token through HTTP, which asks.
      if (!opened) void this.fetch('/prompt').catch(() => undefined);
      setTimeout(() => this.#open(), Math.min(10_000, 300 * 2 ** Math.min(this.#retry, 5)));
    });
  }

  #onMessage(event: MessageEvent): void {
    if (event.data instanceof ArrayBuffer) {
      const view = new DataView(event.data);
      if (view.byteLength < 8) return;
      const type = view.getUint32(0);
      if (type !== BINARY_PREVIEW_IMAGE) return;
      const format = view.getUint32(4) === 2 ? 'image/png' : 'image/jpeg';
      this.dispatchEvent(new CustomEvent('b_preview', { detail: new Blob([event.data.slice(8)], { type: format }) }));
      return;
    }
    let message: { type?: unknown; data?: unknown };
    try {
      message = JSON.parse(String(event.data)) as { type?: unknown; data?: unknown };
    } catch {
      console.warn('gategraph: ignoring a websocket message that is not JSON', event.data);
      return;
    }
    if (typeof message.type !== 'string') return;
    this.dispatchEvent(new CustomEvent(message.type, { detail: message.data }));
  }
}

async function errorMessage(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { message?: string } | string };
    const message = typeof body.error === 'string' ? body.error : body.error?.message;
    if (message) return message;
  } catch {
    // not JSON: use the text
  }
  return text.trim().slice(0, 300) || `HTTP ${response.status} ${response.statusText}`;
}
