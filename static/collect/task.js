// The dot schedule: calibration and collection dots (fixation delay, capture window,
// attention letter) and the pursuit mode (a dot gliding between points). Runs on timers
// only: uploads go to the UploadQueue and are never awaited here.

const GAP_MS = 250;             // blank screen between two dots
const BACKGROUND_PERIOD_S = 40; // one black → grey → black cycle
const BACKGROUND_MAX_GREY = 110;

export class Interrupted extends Error {}

const newFrameId = () =>
  (crypto.randomUUID ? crypto.randomUUID()
                     : "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
                         (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)));

export class DotTask {
  constructor({ stage, dot, letter, grabber, api, queue, settings, onProgress, onCapture, onFrame }) {
    Object.assign(this, { stage, dot, letter, grabber, api, queue, settings });
    this.onProgress = onProgress || (() => {});
    this.onCapture = onCapture || (() => {});
    this.onFrame = onFrame || (() => {});
    this.paused = false;
    this.cancelSleep = null;
    this.resumeWaiters = [];
    this.answerWaiter = null;
    this.results = { trials: 0, attentionPassed: 0, attentionFailed: 0 };
  }

  // ---- pausing -------------------------------------------------------------

  pause() {
    if (this.paused) return;
    this.paused = true;
    this.hideDot();
    if (this.cancelSleep) this.cancelSleep();
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.resumeWaiters.splice(0).forEach((resolve) => resolve());
  }

  untilResumed() {
    return this.paused ? new Promise((resolve) => this.resumeWaiters.push(resolve)) : Promise.resolve();
  }

  /** Wait `ms`; throws Interrupted when a pause comes first. */
  sleep(ms) {
    if (this.paused) return Promise.reject(new Interrupted());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.cancelSleep = null; resolve(); }, ms);
      this.cancelSleep = () => { clearTimeout(timer); this.cancelSleep = null; reject(new Interrupted()); };
    });
  }

  // ---- the dot and the background -------------------------------------------

  showDot(target, letter = "") {
    const r = this.settings.target_radius;
    Object.assign(this.dot.style, {
      left: `${target.x - r}px`, top: `${target.y - r}px`, width: `${2 * r}px`, height: `${2 * r}px`,
    });
    this.letter.textContent = letter;
    this.dot.hidden = false;
    this.stage.dataset.dotX = Math.round(target.x);
    this.stage.dataset.dotY = Math.round(target.y);
  }

  hideDot() {
    this.dot.hidden = true;
    this.dot.classList.remove("arriving");
    this.letter.textContent = "";
  }

  startBackgroundDrift() {
    const start = performance.now();
    const step = (now) => {
      const phase = ((now - start) / 1000 / BACKGROUND_PERIOD_S) * 2 * Math.PI;
      const grey = Math.round(((1 - Math.cos(phase)) / 2) * BACKGROUND_MAX_GREY);
      this.stage.style.backgroundColor = `rgb(${grey}, ${grey}, ${grey})`;
      this.driftFrame = requestAnimationFrame(step);
    };
    this.driftFrame = requestAnimationFrame(step);
  }

  stopBackgroundDrift() {
    cancelAnimationFrame(this.driftFrame);
  }

  // ---- attention letter ------------------------------------------------------

  /** Called by the page's key handler with "L" or "R". */
  answer(letter) {
    if (this.answerWaiter) this.answerWaiter(letter);
  }

  waitForAnswer(ms) {
    return new Promise((resolve, reject) => {
      const finish = (value) => {
        clearTimeout(timer);
        this.answerWaiter = null;
        this.cancelSleep = null;
        resolve(value);
      };
      const timer = setTimeout(() => finish(null), ms);
      this.answerWaiter = finish;
      this.cancelSleep = () => {
        clearTimeout(timer);
        this.answerWaiter = null;
        this.cancelSleep = null;
        reject(new Interrupted());
      };
    });
  }

  // ---- uploads -----------------------------------------------------------------

  /** The trial of a dot shown now; it travels with the dot's frames (one request a dot). */
  newTrial(kind, target) {
    return { kind, target_x: target.x, target_y: target.y, shown_at: new Date().toISOString(),
             client_trial_id: newFrameId() };
  }

  grabFrame(target) {
    const meta = {
      client_frame_id: newFrameId(),
      target_x: target.x,
      target_y: target.y,
      captured_at: new Date().toISOString(),
    };
    const jpeg = this.grabber.grab();
    jpeg.catch(() => {});
    return { meta, jpeg };
  }

  /** A dot's frames go with its trial (and its attention answer, which the trial carries),
   *  a batch per request (at most upload_batch_frames, and well under the server's body
   *  limit): a request's own cost on the server is paid once for them. Each batch carries
   *  the trial; the server stores it once (its client_trial_id). */
  enqueueFrames(frames, trial) {
    this.onCapture(frames.length);
    const perBatch = Math.max(1, this.settings.upload_batch_frames || 1);
    for (let start = 0; start < frames.length; start += perBatch) {
      this.enqueueBatch(frames.slice(start, start + perBatch), trial);
    }
  }

  enqueueBatch(frames, trial) {
    const upload = this.queue.push(async () => {
      const jpegs = await Promise.all(frames.map((f) => f.jpeg));
      const metas = frames.map((f) => f.meta);
      const bytes = jpegs.reduce((sum, jpeg) => sum + jpeg.size, 0);
      if (jpegs.length > 1 && bytes > 0.8 * (this.settings.max_upload_bytes || Infinity)) {
        const single = await Promise.all(jpegs.map((jpeg, i) => this.api.uploadFrames([jpeg], [metas[i]], trial)));
        return single.flat();
      }
      return this.api.uploadFrames(jpegs, metas, trial);
    }, frames.length);
    upload.then((results) => results.forEach((body) => this.onFrame(body)),
      () => frames.forEach(() => this.onFrame(null)));
  }

  // ---- fixed dots (calibration and collection) -----------------------------------

  get msPerDot() {
    const s = this.settings;
    return GAP_MS + s.fixation_delay_ms + s.capture_window_ms + s.attention_ms / 2;
  }

  /** Show each target once (repeating one cut short by a pause); returns when all are done. */
  async runDots(kind, targets) {
    for (let index = 0; index < targets.length; ) {
      this.onProgress({ kind, done: index, total: targets.length, msLeft: (targets.length - index) * this.msPerDot });
      try {
        await this.runOneDot(kind, targets[index]);
        index += 1;
      } catch (error) {
        if (!(error instanceof Interrupted)) throw error;
        this.hideDot();
        await this.untilResumed();
      }
    }
    this.onProgress({ kind, done: targets.length, total: targets.length, msLeft: 0 });
  }

  async runOneDot(kind, target) {
    const s = this.settings;
    this.hideDot();
    await this.sleep(GAP_MS);
    this.showDot(target);
    this.dot.classList.add("arriving");
    const trial = this.newTrial(kind, target);
    await this.sleep(s.fixation_delay_ms);

    const frames = [];
    const count = Math.max(1, Math.round((s.capture_window_ms * s.capture_fps) / 1000));
    const period = s.capture_window_ms / count;
    for (let i = 0; i < count; i += 1) {
      frames.push(this.grabFrame(target));
      await this.sleep(period);
    }

    const letter = Math.random() < 0.5 ? "L" : "R";
    this.letter.textContent = letter;
    this.dot.dataset.letter = letter;
    const answer = await this.waitForAnswer(s.attention_ms);
    this.letter.textContent = "";
    delete this.dot.dataset.letter;

    // Frames of an interrupted dot never reach this point: they are simply dropped, and
    // its trial, which travels with them, is never stored.
    this.enqueueFrames(frames, { ...trial, attention_letter: letter, attention_answer: answer });
    this.results.trials += 1;
    if (answer === letter) this.results.attentionPassed += 1;
    else this.results.attentionFailed += 1;
  }

  // ---- pursuit -------------------------------------------------------------------------

  /** A dot glides between `points` at target_speed for pursuit_seconds; every
   *  skip_frames-th tick at record_frame_rate is captured. */
  async runPursuit(points) {
    const s = this.settings;
    const tickMs = 1000 / s.record_frame_rate;
    const totalMs = s.pursuit_seconds * 1000;
    let position = { ...points[0] };
    let movedMs = 0;
    let next = 1;
    while (movedMs < totalMs && next < points.length) {
      this.onProgress({ kind: "pursuit", done: movedMs, total: totalMs, msLeft: totalMs - movedMs });
      const goal = points[next];
      try {
        movedMs += await this.glide(position, goal, tickMs, totalMs - movedMs);
        position = { ...goal };
        next += 1;
      } catch (error) {
        if (!(error instanceof Interrupted)) throw error;
        await this.untilResumed();
        position = { ...points[next - 1] };
      }
    }
    this.hideDot();
    this.onProgress({ kind: "pursuit", done: totalMs, total: totalMs, msLeft: 0 });
  }

  async glide(from, to, tickMs, msAllowed) {
    const s = this.settings;
    const distance = Math.hypot(to.x - from.x, to.y - from.y);
    const duration = Math.min((distance / s.target_speed) * 1000, msAllowed);
    const trial = this.newTrial("pursuit", to);
    const frames = [];
    this.showDot(from);
    for (let tick = 0, t = 0; t <= duration; tick += 1, t += tickMs) {
      const f = duration ? t / (distance / s.target_speed * 1000) : 1;
      const here = { x: from.x + (to.x - from.x) * f, y: from.y + (to.y - from.y) * f };
      this.showDot(here);
      if (tick % s.skip_frames === 0) frames.push(this.grabFrame(here));
      await this.sleep(tickMs);
    }
    this.enqueueFrames(frames, trial);
    return duration;
  }
}
