// upload-auth browser helper: upload one file with a fresh single-use credential.
// A dependency-free ES module: served by upload-auth at /upload-auth.js, or copy the file.
//
//   import { upload } from "/upload-auth.js";
//   const result = await upload(file, {
//     authUrl: "https://upload-auth.example.com",   // the credential service
//     uploadUrl: "https://upload.imagekit.io",       // the upload API (v2: default from the service)
//     version: "v2",                                 // or "v1"
//     profile: "avatar",                             // v2 only
//     headers: { Authorization: `Bearer ${idToken}` },
//     withCredentials: false,                        // true: send cookies (forward auth)
//     onProgress: ({ loaded, total, fraction }) => {},
//     signal: abortController.signal,
//   });
//
// Where the credential comes from, one of:
//   authUrl          the credential service itself (the browser is a caller: its identity
//                    provider's token in `headers`, or its session cookie with withCredentials);
//   credentialUrl    your back end's relay (the API-key set-up): the helper POSTs it
//                    {version, fileName, fileSize, mimeType, profile?, folder?} with the page's
//                    cookies, and it answers what the credential service answered it;
//   getCredential    a function of that same request, resolving to that same answer.
//
// Every attempt fetches a new credential (they are single use); transient failures (network,
// 429, 5xx) are retried with backoff; errors are UploadError with a readable message.

const DEFAULT_UPLOAD_URL = "https://upload.imagekit.io";

export class UploadError extends Error {
  constructor(message, { status = 0, type = "", retryable = false, retryAfter = null } = {}) {
    super(message);
    this.name = "UploadError";
    this.status = status;       // HTTP status, 0 for network errors
    this.type = type;           // problem type (credential service) or "" (upload API)
    this.retryable = retryable;
    this.retryAfter = retryAfter;
  }
}

function cancelled() {
  return new DOMException("The upload was cancelled.", "AbortError");
}

function base(url) {
  return String(url).replace(/\/+$/, "");
}

function retryableStatus(status) {
  return status === 429 || status >= 500;
}

async function describe(response, where) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to the status line
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  const options = {
    status: response.status,
    type: (body && body.type) || "",
    retryable: retryableStatus(response.status),
    retryAfter,
  };
  if (response.status === 401) {
    return new UploadError(`${where} refused: you are not signed in.`, options);
  }
  if (response.status === 403) {
    return new UploadError(`${where} refused: ${(body && body.detail) || "not allowed"}.`, options);
  }
  if (response.status === 429) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : "";
    return new UploadError(`Too many uploads for now.${wait}`, options);
  }
  const text = body && (body.detail || body.message || body.title);
  return new UploadError(text ? `${where}: ${text}` : `${where} answered ${response.status}.`, options);
}

async function call(url, init, where) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (init.signal && init.signal.aborted) throw cancelled();
    throw new UploadError(`${where} cannot be reached (${error.message}).`, { retryable: true });
  }
  if (!response.ok) throw await describe(response, where);
  return response.json();
}

// The credential service's answer for this file: from the service, the app's relay, or the
// app's own function.
async function answer(request, options) {
  if (options.getCredential) {
    try {
      return await options.getCredential({ ...request });
    } catch (error) {
      if (error.name === "AbortError" || error instanceof UploadError) throw error;
      throw new UploadError(`The app's credential function failed (${error.message}).`, {
        retryable: true,
      });
    }
  }
  const init = {
    headers: { ...(options.headers || {}) },
    credentials: options.withCredentials ? "include" : "same-origin",
    cache: "no-store",
    signal: options.signal,
  };
  if (options.credentialUrl) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(request);
    return call(options.credentialUrl, init, "The app's credential endpoint");
  }
  const authUrl = base(options.authUrl || location.origin);
  const { version, ...file } = request;
  if (version === "v1") return call(`${authUrl}/v1/auth`, init, "The credential service");
  init.method = "POST";
  init.headers["Content-Type"] = "application/json";
  init.body = JSON.stringify(file);
  return call(`${authUrl}/v2/token`, init, "The credential service");
}

async function credential(file, options) {
  const fileName = options.fileName || file.name;
  const version = options.version || "v2";
  const request = { version, fileName };
  if (version === "v2") {
    request.fileSize = file.size;
    request.mimeType = file.type || "application/octet-stream";
    if (options.profile) request.profile = options.profile;
  }
  if (options.folder) request.folder = options.folder;
  const given = await answer(request, options);
  if (version === "v1") {
    const fields = {
      fileName, publicKey: given.publicKey, signature: given.signature,
      expire: String(given.expire), token: given.token,
    };
    if (options.folder) fields.folder = options.folder;
    const uploadBase = base(options.uploadUrl || DEFAULT_UPLOAD_URL);
    return { url: `${uploadBase}/api/v1/files/upload`, fields };
  }
  const url = options.uploadUrl ? `${base(options.uploadUrl)}/api/v2/files/upload` : given.uploadUrl;
  return { url, fields: { ...given.fields, token: given.token } };
}

function send(url, fields, file, fileName, options) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, fileName);
    const xhr = new XMLHttpRequest();
    const signal = options.signal;
    const abort = () => xhr.abort();
    if (signal) signal.addEventListener("abort", abort, { once: true });
    const done = () => signal && signal.removeEventListener("abort", abort);
    if (options.onProgress) {
      xhr.upload.onprogress = (event) => {
        const total = event.lengthComputable ? event.total : file.size;
        options.onProgress({ loaded: event.loaded, total, fraction: total ? event.loaded / total : 0 });
      };
    }
    xhr.onabort = () => { done(); reject(cancelled()); };
    xhr.onerror = () => {
      done();
      reject(new UploadError("The upload API cannot be reached.", { retryable: true }));
    };
    xhr.onload = () => {
      done();
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300 && body) return resolve(body);
      const message = (body && (body.message || body.detail || body.title)) || `answered ${xhr.status}`;
      const retryAfter = Number(xhr.getResponseHeader("Retry-After")) || null;
      reject(new UploadError(`The upload API: ${message}`, {
        status: xhr.status, retryable: retryableStatus(xhr.status), retryAfter,
      }));
    };
    xhr.open("POST", url);
    xhr.send(form);
  });
}

function pause(seconds, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); reject(cancelled()); }, { once: true });
  });
}

export async function upload(file, options = {}) {
  const retries = options.retries ?? 3;
  const fileName = options.fileName || file.name;
  for (let attempt = 0; ; attempt += 1) {
    if (options.signal && options.signal.aborted) throw cancelled();
    try {
      const { url, fields } = await credential(file, options);  // fresh for every attempt
      return await send(url, fields, file, fileName, options);
    } catch (error) {
      if (error.name === "AbortError" || !error.retryable || attempt >= retries) throw error;
      const wait = error.retryAfter || Math.min(8, 0.5 * 2 ** attempt) * (0.5 + Math.random());
      await pause(wait, options.signal);
    }
  }
}

// A signed delivery URL for a stored file (a private one, typically): POST /v1/signed-url.
// `path` is the upload's `filePath`; options: authUrl, headers, withCredentials, profile,
// expiresIn (seconds; the profile's url_lifetime at most). Resolves to {url, expiresAt}.
export async function signedUrl(path, options = {}) {
  const authUrl = base(options.authUrl || location.origin);
  const request = { path };
  if (options.profile) request.profile = options.profile;
  if (options.expiresIn) request.expiresIn = options.expiresIn;
  return call(`${authUrl}/v1/signed-url`, {
    method: "POST",
    headers: { ...(options.headers || {}), "Content-Type": "application/json" },
    credentials: options.withCredentials ? "include" : "same-origin",
    cache: "no-store",
    body: JSON.stringify(request),
    signal: options.signal,
  }, "The credential service");
}
