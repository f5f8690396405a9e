// The /delete page: a deletion code "<volunteer_id>.<upload_token>" deletes that volunteer.
import { deleteVolunteer } from "./api.js";

const form = document.getElementById("delete-form");
const result = document.getElementById("delete-result");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = form.elements.code.value.trim();
  const dot = code.indexOf(".");
  if (dot < 1 || dot === code.length - 1) {
    result.textContent = "That does not look like a deletion code: it has two parts joined by a dot.";
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const { deleted } = await deleteVolunteer(code.slice(0, dot), code.slice(dot + 1));
    result.textContent = `Done. We deleted ${deleted.sessions} session(s), ${deleted.samples} sample(s) ` +
                         "and every picture of you.";
    document.body.dataset.deleted = "1";
    form.hidden = true;
  } catch (error) {
    button.disabled = false;
    result.textContent = error.status === 404 || error.status === 401 || error.status === 403
      ? "We found nothing to delete for this code. Check that you pasted all of it."
      : `Deleting failed (${error.message}). Please try again in a moment.`;
  }
});
