// The collection API (docs/api-contract.md). Every method throws HttpError for a non-2xx
// answer and lets fetch's TypeError through for network failures, so callers can tell
// "retry later" from "give up".

export class HttpError extends Error {
  constructor(status, body, retryAfterS) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.retryAfterS = retryAfterS;
  }

  get retryable() {
    return this.status === 429 || this.status >= 500;
  }
}

async function request(method, url, { token, json, form } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(url, { method, headers, body, cache: "no-store" });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const retryAfter = Number(response.headers.get("Retry-After"));
    throw new HttpError(response.status, data, Number.isFinite(retryAfter) ? retryAfter : null);
  }
  return data;
}

export async function createSession(fields) {
  return request("POST", "/api/v1/sessions", { json: { consent: true, ...fields } });
}

export async function deleteVolunteer(volunteerId, token) {
  return request("DELETE", `/api/v1/volunteers/${encodeURIComponent(volunteerId)}`, { token });
}

/** Calls on one collection session, authorised by its upload token. */
export class SessionApi {
  constructor({ session_id, volunteer_id, upload_token }) {
    this.id = session_id;
    this.volunteerId = volunteer_id;
    this.token = upload_token;
    this.base = `/api/v1/sessions/${encodeURIComponent(session_id)}`;
  }

  call(method, path, options = {}) {
    return request(method, this.base + path, { token: this.token, ...options });
  }

  /** Screen set-up: `{screen_width, screen_height, device_pixel_ratio, mm_per_px}`. */
  updateScreen(screen) {
    return this.call("PATCH", "", { json: screen });
  }

  checkFrame(jpeg) {
    const form = new FormData();
    form.append("frame", jpeg, "check.jpg");
    return this.call("POST", "/check-frame", { form });
  }

  /** Frames of one dot in one request (POST …/frames/batch) with the dot's `trial`
   *  (idempotent per its client_trial_id: a retry finds the trial the first try stored);
   *  resolves with one result per frame. */
  uploadFrames(jpegs, metas, trial) {
    const form = new FormData();
    jpegs.forEach((jpeg, i) => form.append("frame", jpeg, `${metas[i].client_frame_id}.jpg`));
    form.append("meta", JSON.stringify(metas));
    form.append("trial", JSON.stringify(trial));
    return this.call("POST", "/frames/batch", { form }).then((body) => body.results);
  }

  nextTargets(kind, n) {
    return this.call("GET", `/next-targets?kind=${kind}&n=${n}`);
  }

  summary() {
    return this.call("GET", "");
  }

  finish() {
    return this.call("POST", "/finish");
  }

  accuracy() {
    return this.call("GET", "/accuracy");
  }

  coverage(cols, rows) {
    return request("GET", `/api/v1/coverage?cols=${cols}&rows=${rows}&session_id=${encodeURIComponent(this.id)}`,
                   { token: this.token });
  }

  deleteVolunteer() {
    return deleteVolunteer(this.volunteerId, this.token);
  }
}
