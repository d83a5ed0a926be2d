/**
 * @topiary/backend-wasm/browser — the GEMM's browser platform: Web Workers for its threads when the page is
 * cross-origin isolated, one thread otherwise. Pass it to the backend (`new WasmBackend(options,
 * browserGemmPlatform())`) from a Web Worker; the package's main entry is the same in Node and in a page.
 */
export { browserGemmPlatform, type BrowserGemmPlatformOptions } from './gemm/platform-browser.js';
