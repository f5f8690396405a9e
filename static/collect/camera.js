// Webcam access and 640x480 JPEG frames drawn from it through a canvas.

export const FRAME_WIDTH = 640;
export const FRAME_HEIGHT = 480;
const JPEG_QUALITY = 0.9;

/** Ask for the camera; throws the browser's DOMException (NotAllowedError, NotFoundError…). */
export async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const error = new Error("This browser cannot use a camera on this page.");
    error.name = "NotSupportedError";
    throw error;
  }
  return navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { width: { ideal: FRAME_WIDTH }, height: { ideal: FRAME_HEIGHT }, facingMode: "user" },
  });
}

export function closeCamera(stream) {
  if (stream) stream.getTracks().forEach((track) => track.stop());
}

/** Words for a getUserMedia failure, for people rather than programmers. */
export function explainCameraError(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "The browser did not allow this page to use your camera. Nothing was recorded. " +
             "If you changed your mind, allow the camera for this page and try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "We could not find a camera on this computer. Plug one in and try again.";
    case "NotReadableError":
    case "AbortError":
      return "Your camera is busy or could not start — another program may be using it.";
    default:
      return "This browser cannot use a camera on this page. Please try a current Chrome or Firefox.";
  }
}

/** Draws the video into a 640x480 canvas (centre crop to 4:3) and encodes a JPEG. */
export class FrameGrabber {
  constructor(video) {
    this.video = video;
    this.canvas = document.createElement("canvas");
    this.canvas.width = FRAME_WIDTH;
    this.canvas.height = FRAME_HEIGHT;
    this.context = this.canvas.getContext("2d");
  }

  get ready() {
    return this.video.readyState >= 2 && this.video.videoWidth > 0;
  }

  grab() {
    const { videoWidth: w, videoHeight: h } = this.video;
    const scale = Math.max(FRAME_WIDTH / w, FRAME_HEIGHT / h);
    const sw = FRAME_WIDTH / scale;
    const sh = FRAME_HEIGHT / scale;
    this.context.drawImage(this.video, (w - sw) / 2, (h - sh) / 2, sw, sh,
                           0, 0, FRAME_WIDTH, FRAME_HEIGHT);
    return new Promise((resolve, reject) => {
      this.canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("JPEG encoding failed"))),
                         "image/jpeg", JPEG_QUALITY);
    });
  }
}
