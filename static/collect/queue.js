// Background upload queue: jobs start in order, a few at a time, and each is retried
// (with back-off, honouring Retry-After) until the server takes it. Only a 4xx other
// than 429 gives up on a job. The dot schedule only ever calls push(), never waits.

const FIRST_RETRY_MS = 500;
const LONGEST_RETRY_MS = 4000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function isRetryable(error) {
  return error instanceof TypeError || error.retryable === true;
}

export class UploadQueue {
  constructor({ concurrency = 3, onChange = () => {} } = {}) {
    this.concurrency = concurrency;
    this.onChange = onChange;
    this.waiting = [];
    this.running = 0;
    this.done = 0;
    this.failed = 0;
    this.retries = 0;
    this.lastRetryAt = -Infinity;
    this.idleWaiters = [];
    this.picturesRunning = 0;
  }

  get pending() {
    return this.waiting.length + this.running;
  }

  /** Webcam pictures in the jobs not yet done (what the volunteer is told waits). */
  get picturesPending() {
    return this.waiting.reduce((sum, entry) => sum + entry.pictures, this.picturesRunning);
  }

  /** Add a job (an async function) carrying `pictures` webcam pictures; resolves with its
   *  result once it has succeeded. */
  push(job, pictures = 0) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ job, resolve, reject, pictures });
      this.report();
      this.pump();
    });
  }

  /** Resolves when nothing is waiting or running. */
  drained() {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  pump() {
    while (this.running < this.concurrency && this.waiting.length) {
      const entry = this.waiting.shift();
      this.running += 1;
      this.picturesRunning += entry.pictures;
      this.runWithRetries(entry).finally(() => {
        this.running -= 1;
        this.picturesRunning -= entry.pictures;
        this.report();
        this.pump();
      });
    }
  }

  async runWithRetries({ job, resolve, reject }) {
    let delay = FIRST_RETRY_MS;
    for (;;) {
      try {
        const result = await job();
        this.done += 1;
        resolve(result);
        return;
      } catch (error) {
        if (!isRetryable(error)) {
          this.failed += 1;
          console.warn("upload given up:", error);
          reject(error);
          return;
        }
        this.retries += 1;
        this.lastRetryAt = performance.now();
        this.report();
        const wait = error.retryAfterS ? error.retryAfterS * 1000 : delay;
        await sleep(wait);
        delay = Math.min(delay * 2, LONGEST_RETRY_MS);
      }
    }
  }

  report() {
    this.onChange(this);
    if (this.pending === 0) {
      this.idleWaiters.splice(0).forEach((resolve) => resolve());
    }
  }
}
