/**
 * The editor application: one litegraph graph and canvas, the node classes of the server's /object_info, the
 * API client, and the operations the UI and extensions use (queue, load, serialize). Extensions receive this
 * object as `app` (see extensions.ts for the contract).
 */
import { Api, PromptRejectedError, type NodeError } from './api.ts';
import { normalizeUiWorkflow, uiToApi, uiWorkflowVersion, VIRTUAL_NODE_TYPES, type ApiPrompt, type UiWorkflow } from './core.ts';
import type { ChangeTracker } from './change-tracker.ts';
import type { SettingsStore } from './settings.ts';
import type { WorkflowTabs } from './workflow-tabs.ts';
import { installDomWidgets } from './dom-widgets.ts';
import { LGraph, LGraphCanvas, LiteGraph, type LGraphCanvasType, type LGraphType } from './litegraph.ts';
import { adoptMissingNodes } from './missing-nodes.ts';
import { isEditorNode, type EditorNode } from './node-state.ts';
import { definitionFromObjectInfo, type ObjectInfoEntry } from './object-info.ts';
import { registerNodeTypes, type NodeTypeHooks } from './node-types.ts';
import { registerVirtualNodes } from './virtual-nodes.ts';
import { registerPrimitiveNode } from './primitive-node.ts';
import { setUploadApi } from './image-upload.ts';
import { applyTheme } from './theme.ts';
import { applyControlAfterGenerate, getControlMode, setInvalidNumberHandler } from './widgets.ts';

export interface EditorExtension {
  name: string;
  init?(app: EditorApp): void | Promise<void>;
  setup?(app: EditorApp): void | Promise<void>;
  nodeCreated?(node: EditorNode, app: EditorApp): void;
  beforeRegisterNodeDef?(nodeType: unknown, nodeData: ObjectInfoEntry, app: EditorApp): void | Promise<void>;
}

export interface QueuedPrompt {
  promptId: string;
  number: number;
}

/** How a workflow is opened: under which workflow id (a tab's, to go on with its undo history) and name. */
export interface GraphLoadOptions {
  workflowId?: string;
  name?: string;
}

/** Problems with a loaded workflow that the user should see, but that do not stop the load. */
export interface LoadReport {
  missingTypes: string[];
  warnings: string[];
}

export class EditorApp {
  readonly api: Api;
  readonly graph: LGraphType;
  canvas!: LGraphCanvasType;
  canvasEl!: HTMLCanvasElement;
  objectInfo: Record<string, ObjectInfoEntry> = {};
  readonly extensions: EditorExtension[] = [];
  /**
   * The loaded workflow's subgraph definitions (UI version 1), kept as they were: litegraph 0.7 cannot edit
   * subgraphs, so their instances are placeholders, but saving and queueing still carry the definitions.
   */
  #definitions: unknown;
  /** The step plan a TGATE/DeepCache node shows (set by tgate-timeline.ts; for scripts and tests). */
  timelineFor?: (node: EditorNode) => unknown;
  /** Undo/redo of this workflow (change-tracker.ts; set once start-up has loaded the graph). */
  changeTracker?: ChangeTracker;
  /** The user's settings (comfy.settings.json); set at start-up, before the UI is installed. */
  settings?: SettingsStore;
  /** The workflow tabs (workflow-tabs.ts); set once start-up has loaded the first graph. */
  tabs?: WorkflowTabs;
  /** Listeners for app-level happenings the UI shows (toasts, panels). */
  readonly events = new EventTarget();

  constructor(api = new Api()) {
    this.api = api;
    setUploadApi(api, (message) => this.notify('error', message));
    setInvalidNumberHandler((widget, kept) => this.notify('warning', `Not a number: ${widget.label ?? widget.name} keeps ${kept}`));
    applyTheme();
    this.graph = new LGraph();
  }

  /** Creates the canvas in the given element (the graph is drawn there from now on). */
  mountCanvas(container: HTMLElement): void {
    this.canvasEl = document.createElement('canvas');
    this.canvasEl.id = 'gg-canvas';
    this.canvasEl.tabIndex = 1;
    container.append(this.canvasEl);
    const resize = () => {
      const rect = container.getBoundingClientRect();
      this.canvasEl.width = Math.max(1, Math.floor(rect.width));
      this.canvasEl.height = Math.max(1, Math.floor(rect.height));
      this.canvas?.setDirty(true, true);
    };
    resize();
    new ResizeObserver(resize).observe(container);
    this.canvas = new LGraphCanvas(this.canvasEl, this.graph);
    applyTheme(this.canvas);
    (this.canvas as unknown as { show_info: boolean }).show_info = false;
    installDomWidgets(this.canvas, container);
  }

  /** Registers node classes from /object_info (again: a refresh replaces them). */
  async registerNodes(info: Record<string, ObjectInfoEntry>): Promise<void> {
    this.objectInfo = info;
    const hooks: NodeTypeHooks = {
      nodeCreated: (node) => {
        for (const extension of this.extensions) {
          try {
            extension.nodeCreated?.(node, this);
          } catch (error) {
            console.error(`gategraph: extension ${extension.name} failed in nodeCreated for ${node.comfyClass}`, error);
          }
        }
      },
      widgetChanged: () => this.canvas?.setDirty(true, false),
      beforeRegister: (nodeType, nodeData) => {
        for (const extension of this.extensions) {
          try {
            void extension.beforeRegisterNodeDef?.(nodeType, nodeData, this);
          } catch (error) {
            console.error(`gategraph: extension ${extension.name} failed in beforeRegisterNodeDef`, error);
          }
        }
      },
    };
    registerVirtualNodes();
    registerPrimitiveNode();
    registerNodeTypes(info, hooks);
  }

  /**
   * Reads /object_info again (ComfyUI's Refresh): classes of newly installed packs appear, and the choices of
   * existing combo widgets (model files, input images) are brought up to date.
   */
  async refreshNodeDefinitions(): Promise<void> {
    const info = await this.api.objectInfo();
    await this.registerNodes(info);
    for (const node of this.nodes) {
      const entry = info[node.comfyClass];
      if (!entry) continue;
      for (const widget of node.widgets ?? []) {
        const spec = entry.input.required[widget.name] ?? entry.input.optional?.[widget.name];
        const values = spec?.[0];
        if (Array.isArray(values) && widget.type === 'combo') (widget.options as { values: string[] }).values = values.map(String);
      }
    }
    this.canvas?.setDirty(true, true);
    this.notify('info', `Node definitions refreshed: ${Object.keys(info).length} classes`);
  }

  get nodes(): EditorNode[] {
    return (this.graph as unknown as { _nodes: unknown[] })._nodes.filter(isEditorNode);
  }

  nodeById(id: string | number): EditorNode | undefined {
    const node = this.graph.getNodeById(Number(id));
    return isEditorNode(node) ? node : undefined;
  }

  /**
   * The graph in UI format (litegraph's serialize, version 0.4), as a plain JSON copy. Positions and sizes are
   * arrays (litegraph 0.7 keeps them in Float32Arrays, which JSON writes as {"0": x, "1": y, ...}), and
   * `extra.ds` is the view on screen (scale and offset), as ComfyUI saves it.
   */
  serializeGraph(): UiWorkflow {
    (this.graph as unknown as { updateExecutionOrder(): void }).updateExecutionOrder();
    const data = this.graph.serialize() as unknown as { nodes: { pos?: ArrayLike<number>; size?: ArrayLike<number> }[]; extra?: Record<string, unknown> };
    for (const node of data.nodes) {
      if (node.pos) node.pos = Array.from(node.pos).slice(0, 2);
      if (node.size) node.size = Array.from(node.size).slice(0, 2);
    }
    if (this.canvas) {
      const ds = this.canvas.ds as unknown as { scale: number; offset: ArrayLike<number> };
      data.extra = { ...(data.extra ?? {}), ds: { scale: ds.scale, offset: Array.from(ds.offset).slice(0, 2) } };
    }
    const workflow = JSON.parse(JSON.stringify(data)) as UiWorkflow;
    if (this.#definitions !== undefined) workflow.definitions = JSON.parse(JSON.stringify(this.#definitions)) as UiWorkflow['definitions'];
    return workflow;
  }

  /** The API prompt ComfyUI's frontend would queue for this graph, by core's converter. */
  graphToPrompt(): { workflow: UiWorkflow; prompt: ApiPrompt; warnings: string[] } {
    const workflow = this.serializeGraph();
    const { prompt, warnings } = uiToApi(workflow, (type) => {
      const entry = this.objectInfo[type];
      return entry ? definitionFromObjectInfo(entry) : undefined;
    });
    return { workflow, prompt, warnings };
  }

  /**
   * Queues the graph `batchCount` times. Control-after-generate widgets move on after each queued prompt (or
   * before it, per the setting), as in ComfyUI. A refused prompt shows its node errors and stops the batch.
   */
  async queuePrompt(batchCount = 1, options: { front?: boolean } = {}): Promise<QueuedPrompt[]> {
    this.clearErrors();
    const queued: QueuedPrompt[] = [];
    // Comfy.WidgetControlMode "before": controlled values move on before each prompt is made, not after.
    const before = getControlMode() === 'before';
    for (let i = 0; i < batchCount; i++) {
      if (before) applyControlAfterGenerate(this.nodes);
      const { workflow, prompt, warnings } = this.graphToPrompt();
      if (i === 0 && warnings.length) this.notify('warning', 'Parts of the graph could not be converted as they are', warnings.join('\n'));
      try {
        const response = await this.api.queuePrompt(prompt, workflow, options);
        queued.push({ promptId: response.prompt_id, number: response.number });
        if (Object.keys(response.node_errors ?? {}).length) {
          // Queued, but only the valid outputs run: say which ones were left out and why.
          this.showNodeErrors(response.node_errors);
          if (i === 0) this.notify('warning', 'Queued, but some outputs will not run', describeNodeErrors(response.node_errors, this));
        }
      } catch (error) {
        if (error instanceof PromptRejectedError) {
          this.showNodeErrors(error.body.node_errors ?? {});
          this.notify('error', error.body.error?.message ?? error.message, describeNodeErrors(error.body.node_errors ?? {}, this));
        } else {
          this.notify('error', error instanceof Error ? error.message : String(error));
        }
        break;
      }
      if (!before) applyControlAfterGenerate(this.nodes);
      this.canvas?.setDirty(true, false);
    }
    this.events.dispatchEvent(new CustomEvent('queued', { detail: queued }));
    return queued;
  }

  /** Marks nodes and inputs named in `node_errors` (POST /prompt's answer). */
  showNodeErrors(nodeErrors: Record<string, NodeError>): void {
    for (const [id, entry] of Object.entries(nodeErrors)) {
      const node = this.nodeById(id.split(':')[0]!);
      if (!node) continue;
      node.gg.errors = entry.errors.map((e) => ({
        ...(e.extra_info?.input_name ? { input: e.extra_info.input_name } : {}),
        message: e.details && !e.message.includes(e.details) ? `${e.message}: ${e.details}` : e.message,
      }));
    }
    this.canvas?.setDirty(true, true);
  }

  clearErrors(): void {
    for (const node of this.nodes) node.gg.errors = [];
    this.events.dispatchEvent(new CustomEvent('errors-cleared'));
    this.canvas?.setDirty(true, true);
  }

  /**
   * Replaces the graph with a UI workflow (version 0.4 or 1). Unknown node types are kept (drawn red, titled
   * with their type, see missing-nodes.ts) and reported, as ComfyUI does, so saving the graph again loses
   * nothing. Announced as `graph-loaded`: a new workflow, with its own undo history.
   */
  loadGraphData(data: unknown, options: GraphLoadOptions = {}): LoadReport {
    const version = uiWorkflowVersion(data);
    if (!version) throw new Error('This JSON is not a UI workflow (no "nodes" list)');
    const graph = normalizeUiWorkflow(data as UiWorkflow) as unknown as Record<string, unknown>;
    const { subgraphDefinitions, ...plain } = graph;
    const definitions = (data as { definitions?: { subgraphs?: { id: string }[] } }).definitions;
    this.#definitions = definitions?.subgraphs?.length ? definitions : undefined;
    const subgraphIds = new Set((subgraphDefinitions as { id: string }[]).map((d) => d.id));
    const types = new Set((plain.nodes as { type: string }[]).map((n) => n.type));
    const missingTypes = [...types].filter((t) => !LiteGraph.registered_node_types[t] && !VIRTUAL_NODE_TYPES.has(t) && !subgraphIds.has(t));
    const warnings: string[] = [];
    if (subgraphIds.size) {
      warnings.push('This workflow uses subgraphs: this editor shows each as a placeholder node; saving keeps them and queueing runs their contents.');
    }
    this.clearErrors();
    this.#configure(plain);
    // The saved view is kept when the whole graph is visible in it on this screen; otherwise (a file from a
    // larger window, or saved as scale 1 / offset 0 by a tool) the graph is fitted to the canvas.
    const extra = (plain.extra ?? {}) as { ds?: { scale?: number; offset?: ArrayLike<number> } };
    if (this.canvas && extra.ds?.offset && this.#fitsIn({ scale: extra.ds.scale ?? 1, offset: [Number(extra.ds.offset[0]), Number(extra.ds.offset[1])] })) {
      const ds = this.canvas.ds as unknown as { scale: number; offset: [number, number] };
      ds.scale = extra.ds.scale ?? 1;
      ds.offset = [Number(extra.ds.offset[0]), Number(extra.ds.offset[1])];
    } else this.fitView();
    this.canvas?.setDirty(true, true);
    this.events.dispatchEvent(new CustomEvent('graph-loaded', { detail: { missingTypes, warnings, ...options } }));
    for (const warning of warnings) this.notify('info', warning);
    if (missingTypes.length) {
      this.notify('warning', `Missing node types: ${missingTypes.join(', ')}`, 'Install the node packs that provide them; the nodes are kept so saving the workflow loses nothing.');
    }
    return { missingTypes, warnings };
  }

  /** The bounds of every node and group (title bars included), or undefined for an empty graph. */
  graphBounds(nodes?: { pos: ArrayLike<number>; size: ArrayLike<number> }[]): [number, number, number, number] | undefined {
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    const boxes = (nodes ?? (this.graph as unknown as { _nodes: { pos: number[]; size: number[] }[] })._nodes).map((n) => [
      n.pos[0]!, n.pos[1]! - title, n.pos[0]! + n.size[0]!, n.pos[1]! + n.size[1]!,
    ]);
    if (!nodes) {
      for (const g of (this.graph as unknown as { _groups: { pos: number[]; size: number[] }[] })._groups) {
        boxes.push([g.pos[0]!, g.pos[1]!, g.pos[0]! + g.size[0]!, g.pos[1]! + g.size[1]!]);
      }
    }
    if (!boxes.length) return undefined;
    return [Math.min(...boxes.map((b) => b[0]!)), Math.min(...boxes.map((b) => b[1]!)), Math.max(...boxes.map((b) => b[2]!)), Math.max(...boxes.map((b) => b[3]!))];
  }

  /** Whether the whole graph lies inside the canvas under a view. */
  #fitsIn(ds: { scale: number; offset: [number, number] }): boolean {
    const bounds = this.graphBounds();
    if (!bounds || !this.canvasEl || !(ds.scale > 0)) return !bounds;
    const [x0, y0, x1, y1] = bounds.map((v, i) => (v + ds.offset[i % 2]!) * ds.scale) as [number, number, number, number];
    return x0 >= 0 && y0 >= 0 && x1 <= this.canvasEl.width && y1 <= this.canvasEl.height;
  }

  /**
   * Puts the graph back into a state the undo history recorded (a `serializeGraph()` copy): nodes, links and
   * groups change, the view and the undo history do not. Not a new workflow, so no `graph-loaded`.
   */
  restoreGraphState(workflow: UiWorkflow): void {
    const { definitions, ...plain } = workflow as UiWorkflow & { definitions?: unknown };
    this.#definitions = definitions;
    const ds = this.canvas ? { ...(this.canvas.ds as unknown as { scale: number; offset: [number, number] }) } : undefined;
    this.#configure(plain as unknown as Record<string, unknown>);
    if (this.canvas && ds) Object.assign(this.canvas.ds as unknown as object, { scale: ds.scale, offset: [...ds.offset] });
    this.canvas?.setDirty(true, true);
  }

  /** litegraph's configure on a copy (it keeps references into what it is given), then missing nodes' looks. */
  #configure(data: Record<string, unknown>): void {
    this.graph.configure(JSON.parse(JSON.stringify(data)) as never);
    const subgraphs = (this.#definitions as { subgraphs?: { id: string; name?: string }[] } | undefined)?.subgraphs ?? [];
    adoptMissingNodes(this.graph, new Map(subgraphs.filter((d) => d.name).map((d) => [d.id, d.name!])));
  }

  /**
   * ComfyUI's mute (mode 2: left out of the prompt, its consumers lose the input) and bypass (mode 4: its
   * inputs are passed through to its outputs of the same type), toggled on the selected nodes.
   */
  toggleMode(mode: 2 | 4, nodes = this.selectedNodes()): void {
    if (!nodes.length) return;
    const on = nodes.some((n) => (n.mode as number) !== mode);
    for (const node of nodes) (node as { mode: number }).mode = on ? mode : 0;
    this.graph.change();
    this.canvas?.setDirty(true, true);
  }

  selectedNodes(): EditorNode[] {
    const selected = (this.canvas as unknown as { selected_nodes?: Record<string, unknown> } | undefined)?.selected_nodes ?? {};
    return Object.values(selected).filter(isEditorNode);
  }

  /**
   * Zooms and scrolls so the given nodes (default: every node and group) are visible, at most at 100 %
   * (ComfyUI's `.` fits the selection, or everything when nothing is selected).
   */
  fitView(nodes?: { pos: ArrayLike<number>; size: ArrayLike<number> }[]): void {
    const bounds = this.graphBounds(nodes);
    if (!this.canvas || !bounds) return;
    const [minX, minY, maxX, maxY] = bounds;
    const margin = 40;
    const width = this.canvasEl.width;
    const height = this.canvasEl.height;
    const scale = Math.min(1, (width - 2 * margin) / (maxX - minX), (height - 2 * margin) / (maxY - minY));
    const ds = this.canvas.ds as unknown as { scale: number; offset: [number, number] };
    ds.scale = scale;
    ds.offset = [(width / scale - (maxX - minX)) / 2 - minX, (height / scale - (maxY - minY)) / 2 - minY];
    // Draw now: litegraph finds nodes under the mouse among the ones drawn in the last frame.
    this.canvas.draw(true, true);
  }

  /** Adds a node of a class at a graph position; returns it (undefined for an unknown class). */
  addNode(type: string, pos?: [number, number], id?: number): EditorNode | undefined {
    const node = LiteGraph.createNode(type);
    if (!node) return undefined;
    if (pos) node.pos = pos;
    // Before `add`: the graph indexes nodes by id when they are added.
    if (id !== undefined && !this.graph.getNodeById(id)) node.id = id;
    this.graph.add(node);
    return isEditorNode(node) ? node : undefined;
  }

  /** Shows a message to the user (the toast area listens). */
  notify(level: 'info' | 'warning' | 'error', message: string, details?: string): void {
    this.events.dispatchEvent(new CustomEvent('notify', { detail: { level, message, details } }));
  }
}

/** A readable list of node errors: "KSampler #3, steps: Value 1000 bigger than max of 100". */
export function describeNodeErrors(nodeErrors: Record<string, NodeError>, app: EditorApp): string {
  const lines: string[] = [];
  for (const [id, entry] of Object.entries(nodeErrors)) {
    const node = app.nodeById(id.split(':')[0]!);
    const name = `${node?.title ?? entry.class_type ?? 'node'} #${id}`;
    for (const error of entry.errors) {
      const input = error.extra_info?.input_name;
      lines.push(`${name}${input ? `, ${input}` : ''}: ${error.message}${error.details && !error.message.includes(error.details) ? ` (${error.details})` : ''}`);
    }
  }
  return lines.join('\n');
}
