/**
 * The access token of a server started with --token: asked once when the server answers 401, kept in
 * localStorage, sent as `Authorization: Bearer` on HTTP and as `?token=` where headers cannot be set (the
 * websocket, <img src>).
 */
const STORAGE_KEY = 'gategraph.token';

export function storedToken(): string | undefined {
  return localStorage.getItem(STORAGE_KEY) || undefined;
}

export function storeToken(token: string | undefined): void {
  if (token) localStorage.setItem(STORAGE_KEY, token);
  else localStorage.removeItem(STORAGE_KEY);
}

let pending: Promise<string | undefined> | undefined;

/**
 * Asks the user for the token (one dialog at a time, however many requests failed together). Resolves to
 * undefined when the user cancels.
 */
export function askForToken(reason: string): Promise<string | undefined> {
  pending ??= new Promise<string | undefined>((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.className = 'gg-dialog';
    dialog.id = 'gg-token-dialog';
    dialog.innerHTML = `
      <form method="dialog">
        <h2>Access token required</h2>
        <p class="gg-muted"></p>
        <label>Token <input name="token" type="password" autocomplete="current-password" required autofocus></label>
        <menu><button value="cancel" formnovalidate>Cancel</button><button value="ok" class="gg-primary">Connect</button></menu>
      </form>`;
    dialog.querySelector('p')!.textContent = reason;
    document.body.append(dialog);
    dialog.addEventListener('close', () => {
      const value = (dialog.querySelector('input') as HTMLInputElement).value.trim();
      const token = dialog.returnValue === 'ok' && value ? value : undefined;
      dialog.remove();
      pending = undefined;
      if (token) storeToken(token);
      resolve(token);
    });
    dialog.showModal();
  });
  return pending;
}
