/**
 * ComfyUI's UI ("workflow") format: what the editor saves, litegraph's `graph.serialize()`.
 *
 * Two versions exist. 0.4 stores links as arrays `[id, origin_id, origin_slot, target_id, target_slot, type]`;
 * version 1 stores them as objects, keeps the id counters in `state`, native reroutes in `reroutes`, and
 * subgraph definitions in `definitions.subgraphs`. `normalizeUiWorkflow` turns either into one in-memory shape
 * (`UiGraph`, 0.4's) so the converter handles a single form. Fields we do not know are kept as they are.
 */

export type UiNodeId = number | string;
/** A socket type: `MODEL`, a comma-separated list `INT,FLOAT`, `*`, a list of names, or a legacy number. */
export type UiDataType = string | string[] | number;

/** litegraph's node modes. */
export const NodeMode = {
  ALWAYS: 0,
  ON_EVENT: 1,
  /** "Mute": the node and everything that needs it do not run. */
  NEVER: 2,
  ON_TRIGGER: 3,
  /** "Bypass": the node is skipped and its inputs are passed through to its outputs by type. */
  BYPASS: 4,
} as const;

export interface UiNodeInput {
  /** The input's name in the node definition: the key in the API format. */
  name: string;
  type: UiDataType;
  /** Id of the connected link, or null. */
  link?: number | null;
  /** Set when the input stands for a widget (a widget converted to a socket). */
  widget?: { name: string; [key: string]: unknown };
  label?: string;
  shape?: number;
  slot_index?: number | string;
  [key: string]: unknown;
}

export interface UiNodeOutput {
  name: string;
  type: UiDataType;
  links?: number[] | null;
  slot_index?: number | string;
  label?: string;
  shape?: number;
  [key: string]: unknown;
}

export interface UiNode {
  id: UiNodeId;
  /** The node class (`class_type` in the API format), a virtual type (`Reroute`), or a subgraph id. */
  type: string;
  pos?: [number, number] | Record<string, number>;
  size?: [number, number] | Record<string, number>;
  flags?: Record<string, unknown>;
  /** Position in the editor's execution order at save time. */
  order?: number;
  /** See `NodeMode`; absent means 0. */
  mode?: number;
  inputs?: UiNodeInput[];
  outputs?: UiNodeOutput[];
  properties?: Record<string, unknown>;
  /** Widget values in widget order (a few nodes store an object keyed by widget name). */
  widgets_values?: unknown[] | Record<string, unknown>;
  /** Only present when the user renamed the node; otherwise the title is the class's display name. */
  title?: string;
  color?: string;
  bgcolor?: string;
  [key: string]: unknown;
}

/** Version 0.4's link: `[id, origin_id, origin_slot, target_id, target_slot, type]`. */
export type UiLinkArray = [
  id: number,
  originId: UiNodeId,
  originSlot: number | string,
  targetId: UiNodeId,
  targetSlot: number | string,
  type: UiDataType,
  ...rest: unknown[],
];

/** Version 1's link. */
export interface UiLinkObject {
  id: number;
  origin_id: UiNodeId;
  origin_slot: number | string;
  target_id: UiNodeId;
  target_slot: number | string;
  type: UiDataType;
  /** The native reroute this link passes through (layout only: it does not change origin or target). */
  parentId?: number;
  [key: string]: unknown;
}

/** A link after normalisation: slots are numbers. */
export type UiLink = [
  id: number,
  originId: UiNodeId,
  originSlot: number,
  targetId: UiNodeId,
  targetSlot: number,
  type: UiDataType,
];

export interface UiGroup {
  id?: number;
  title?: string;
  bounding?: number[];
  color?: string;
  font_size?: number;
  locked?: boolean;
  [key: string]: unknown;
}

export interface UiReroute {
  id: number;
  parentId?: number;
  pos?: [number, number] | Record<string, number>;
  linkIds?: number[] | null;
  [key: string]: unknown;
}

/** A subgraph's input or output, as listed on its definition. */
export interface UiSubgraphIO {
  id?: string;
  name: string;
  type: UiDataType;
  linkIds?: number[];
  label?: string;
  [key: string]: unknown;
}

/**
 * A subgraph definition (version 1). A node of the parent graph whose `type` equals `id` is an instance.
 * Inside, links from the subgraph's inputs have `origin_id` -10 and links to its outputs `target_id` -20.
 */
export interface UiSubgraphDefinition {
  id: string;
  name?: string;
  nodes: UiNode[];
  links?: UiLinkObject[];
  inputs?: UiSubgraphIO[];
  outputs?: UiSubgraphIO[];
  definitions?: { subgraphs?: UiSubgraphDefinition[] };
  [key: string]: unknown;
}

/** The pseudo node ids of a subgraph's input and output boundary. */
export const SUBGRAPH_INPUT_ID = -10;
export const SUBGRAPH_OUTPUT_ID = -20;

export interface UiWorkflow04 {
  id?: string;
  revision?: number;
  last_node_id: UiNodeId;
  last_link_id: number;
  nodes: UiNode[];
  links: UiLinkArray[];
  groups?: UiGroup[];
  config?: Record<string, unknown> | null;
  extra?: Record<string, unknown> | null;
  version: 0.4;
  models?: Record<string, unknown>[];
  definitions?: { subgraphs?: UiSubgraphDefinition[] };
  [key: string]: unknown;
}

export interface UiGraphState {
  lastGroupId?: number;
  lastNodeId?: number;
  lastLinkId?: number;
  lastRerouteId?: number;
  [key: string]: unknown;
}

export interface UiWorkflow1 {
  id?: string;
  revision?: number;
  version: 1;
  state: UiGraphState;
  nodes: UiNode[];
  links?: UiLinkObject[];
  floatingLinks?: UiLinkObject[];
  reroutes?: UiReroute[];
  groups?: UiGroup[];
  config?: Record<string, unknown> | null;
  extra?: Record<string, unknown> | null;
  models?: Record<string, unknown>[];
  definitions?: { subgraphs?: UiSubgraphDefinition[] };
  [key: string]: unknown;
}

export type UiWorkflow = UiWorkflow04 | UiWorkflow1;

/** A subgraph definition after normalisation: links as arrays with numeric slots. */
export interface UiSubgraph {
  id: string;
  name?: string;
  nodes: UiNode[];
  links: UiLink[];
  inputs?: UiSubgraphIO[];
  outputs?: UiSubgraphIO[];
  [key: string]: unknown;
}

/**
 * The single in-memory shape: version 0.4's, with numeric slots, and every subgraph definition (nested ones
 * included) listed once in `subgraphDefinitions`. Version 1's native reroutes go to `extra.reroutes` and link parents to
 * `extra.linkExtensions`, where 0.4 files keep them.
 */
export interface UiGraph {
  last_node_id: UiNodeId;
  last_link_id: number;
  nodes: UiNode[];
  links: UiLink[];
  groups: UiGroup[];
  config: Record<string, unknown>;
  extra: Record<string, unknown>;
  version: 0.4;
  /** Every subgraph definition, nested ones included, once each. */
  subgraphDefinitions: UiSubgraph[];
}

/** The UI format version of a JSON value, or undefined when it does not look like a UI workflow. */
export function uiWorkflowVersion(json: unknown): '0.4' | '1' | undefined {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return undefined;
  const record = json as Record<string, unknown>;
  const looksLikeUi = Array.isArray(record.nodes) || 'last_node_id' in record || 'state' in record;
  if (!looksLikeUi) return undefined;
  return record.version === 1 ? '1' : '0.4';
}

/** Turns a (schema-valid) UI workflow of either version into the 0.4 shape. The input is not modified. */
export function normalizeUiWorkflow(workflow: UiWorkflow): UiGraph {
  const subgraphDefinitions = collectSubgraphs(workflow.definitions?.subgraphs ?? []);
  const groups = workflow.groups ?? [];
  const config = workflow.config ?? {};
  if (workflow.version === 1) {
    const links = (workflow.links ?? []).map(linkFromObject);
    const extra: Record<string, unknown> = { ...(workflow.extra ?? {}) };
    if (workflow.reroutes?.length) extra.reroutes = workflow.reroutes;
    const linkExtensions = (workflow.links ?? [])
      .filter((l) => typeof l.parentId === 'number')
      .map((l) => ({ id: l.id, parentId: l.parentId }));
    if (linkExtensions.length) extra.linkExtensions = linkExtensions;
    return {
      last_node_id: workflow.state.lastNodeId ?? maxNumericId(workflow.nodes.map((n) => n.id)),
      last_link_id: workflow.state.lastLinkId ?? maxNumericId(links.map((l) => l[0])),
      nodes: workflow.nodes,
      links,
      groups,
      config,
      extra,
      version: 0.4,
      subgraphDefinitions,
    };
  }
  return {
    last_node_id: workflow.last_node_id,
    last_link_id: workflow.last_link_id,
    nodes: workflow.nodes,
    links: workflow.links.map(linkFromArray),
    groups,
    config,
    extra: { ...(workflow.extra ?? {}) },
    version: 0.4,
    subgraphDefinitions,
  };
}

/** A slot index as a number (old files sometimes store `"0"`). */
export function slotNumber(slot: number | string): number {
  return typeof slot === 'number' ? slot : Number.parseInt(slot, 10);
}

function linkFromArray(link: UiLinkArray): UiLink {
  return [link[0], link[1], slotNumber(link[2]), link[3], slotNumber(link[4]), link[5]];
}

function linkFromObject(link: UiLinkObject): UiLink {
  return [link.id, link.origin_id, slotNumber(link.origin_slot), link.target_id, slotNumber(link.target_slot), link.type];
}

/** All definitions, nested ones included, each once (the first definition of an id wins). */
function collectSubgraphs(definitions: UiSubgraphDefinition[]): UiSubgraph[] {
  const byId = new Map<string, UiSubgraph>();
  const visit = (list: UiSubgraphDefinition[]) => {
    for (const definition of list) {
      if (byId.has(definition.id)) continue;
      const { links = [], definitions: nested, ...rest } = definition;
      byId.set(definition.id, { ...rest, links: links.map(linkFromObject) });
      visit(nested?.subgraphs ?? []);
    }
  };
  visit(definitions);
  return [...byId.values()];
}

function maxNumericId(ids: UiNodeId[]): number {
  let max = 0;
  for (const id of ids) if (typeof id === 'number' && id > max) max = id;
  return max;
}
