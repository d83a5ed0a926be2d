/** `node:url` for the page: file URLs map to paths of the page's file system (a bundle's own URL to its path). */
export function fileURLToPath(url: string | URL): string {
  return decodeURIComponent(new URL(String(url)).pathname);
}

export function pathToFileURL(path: string): URL {
  return new URL(`file://${encodeURI(path)}`);
}

const URLClass = globalThis.URL;
export { URLClass as URL };
export default { fileURLToPath, pathToFileURL, URL: URLClass };
