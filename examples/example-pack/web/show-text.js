// Editor extension of the example pack: shows what a ShowText node received, on the node itself, and adds
// "Copy shown text" to its context menu.
//
// The contract (see docs/authoring-nodes.md, "Editor extensions"): the editor imports every .js file that
// GET /extensions lists and registers the default export, an object with a unique `name` and optional hooks:
//   setup(app)        once, after the node definitions and the saved graph are loaded;
//   nodeCreated(node, app)  for every node added to the graph; `node` is the litegraph LGraphNode and
//                     `node.comfyClass` its class_type. After a run, the editor calls `node.onExecuted(output)`
//                     with the `ui` object the node's execute returned.
// `app.graph` is the litegraph LGraph; `app.api` is an EventTarget dispatching a CustomEvent per server
// message (`executed`, `progress`, ...) with the message's `data` as `detail`.

/** @type {{ name: string, setup?: (app: any) => void, nodeCreated?: (node: any, app: any) => void }} */
const extension = {
  name: 'example-pack.show-text',

  nodeCreated(node) {
    if (node.comfyClass !== 'ShowText') return;
    let shown = '';
    // A display-only widget: not saved in the workflow, not an input of the node.
    const widget = node.addWidget('text', 'shown', '', () => {}, { serialize: false });
    widget.serialize = false;

    node.onExecuted = (output) => {
      shown = (output?.text ?? []).join('\n\n');
      widget.value = shown;
      node.setDirtyCanvas(true, true);
    };

    const previousMenu = node.getExtraMenuOptions;
    node.getExtraMenuOptions = function (canvas, options) {
      previousMenu?.call(this, canvas, options);
      options.push({ content: 'Copy shown text', disabled: shown === '', callback: () => navigator.clipboard.writeText(shown) });
    };
  },

  setup() {
    console.info('[example-pack] editor extension loaded');
  },
};

export default extension;
