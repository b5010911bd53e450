// The token arrives in the URL the service prints (`/?token=…`). It is kept for the tab
// (sessionStorage) and taken out of the address bar at once, so it ends up in no history,
// bookmark, referrer or log.
const KEY = 'runstate:token';

export function takeToken(): string | null {
  if (typeof window === 'undefined') return null;
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(KEY, fromUrl);
    url.searchParams.delete('token');
    window.history.replaceState(null, '', url.toString());
    return fromUrl;
  }
  return sessionStorage.getItem(KEY);
}
