/**
 * A full-window gallery of output images (ComfyUI's queue lightbox): a large view of one image, arrows (buttons
 * and the arrow keys) to the others, going round at the ends, Escape or a click beside the image to close.
 * While it is open the editor's shortcuts stand aside (`data-gg-own-keys`), so the arrows and Escape act on
 * the gallery only.
 */
export interface LightboxImage {
  src: string;
  name: string;
}

let open: { close(): void } | undefined;

export function openLightbox(images: LightboxImage[], start = 0): void {
  open?.close();
  if (!images.length) return;
  let index = Math.max(0, Math.min(images.length - 1, start));
  const box = document.createElement('div');
  box.className = 'gg-lightbox';
  box.setAttribute('role', 'dialog');
  box.setAttribute('aria-label', 'Output images');
  // The editor's shortcuts stand aside while it is open (keybindings.ts): the keys are the gallery's.
  box.dataset.ggOwnKeys = 'true';
  box.innerHTML = `<button type="button" class="gg-lightbox-prev" aria-label="Previous image">‹</button>
    <figure><img alt=""><figcaption></figcaption></figure>
    <button type="button" class="gg-lightbox-next" aria-label="Next image">›</button>
    <button type="button" class="gg-lightbox-close" aria-label="Close">×</button>`;
  const img = box.querySelector('img')!;
  const caption = box.querySelector('figcaption')!;
  const prev = box.querySelector<HTMLButtonElement>('.gg-lightbox-prev')!;
  const next = box.querySelector<HTMLButtonElement>('.gg-lightbox-next')!;
  const show = (i: number) => {
    index = (i + images.length) % images.length;
    const image = images[index]!;
    img.src = image.src;
    img.alt = image.name;
    box.dataset.index = String(index);
    caption.textContent = `${image.name} (${index + 1} / ${images.length})`;
    prev.hidden = next.hidden = images.length < 2;
  };
  const onKey = (event: KeyboardEvent) => {
    const actions: Record<string, () => void> = { Escape: close, ArrowLeft: () => show(index - 1), ArrowRight: () => show(index + 1) };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    action();
  };
  function close() {
    removeEventListener('keydown', onKey, true);
    box.remove();
    open = undefined;
  }
  prev.addEventListener('click', () => show(index - 1));
  next.addEventListener('click', () => show(index + 1));
  box.querySelector('.gg-lightbox-close')!.addEventListener('click', close);
  box.addEventListener('click', (event) => {
    if (event.target === box) close();
  });
  addEventListener('keydown', onKey, true);
  document.body.append(box);
  show(index);
  open = { close };
}
