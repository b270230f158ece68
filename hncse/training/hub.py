"""Publishing to the Hub: what to tell the user when the repository cannot be created or the last push fails."""

from __future__ import annotations

from hncse.errors import HubError, first_line, hub_offline


def explain_repo_failure(repo_id: str, error: Exception) -> HubError:
    """--push_to_hub could not create or reach the repository before training: say why and the two ways out."""
    return HubError(
        f"--push_to_hub: cannot create or reach the Hub repository {repo_id!r}"
        + (" (HF_HUB_OFFLINE is set)" if hub_offline() else "")
        + f": {first_line(error)}. Check the network and HF_TOKEN (or `hf auth login`), or train without "
        "--push_to_hub and upload the output folder afterwards with `hf upload`"
    )


def explain_push_failure(repo_id: str, output_dir: str, error: Exception) -> HubError:
    """The end-of-training push failed after the folder was saved: the run's work is on disk."""
    return HubError(
        f"the model is saved in {output_dir}, but pushing it to {repo_id!r} failed: {first_line(error)}. "
        f"Upload it with: hf upload {repo_id} {output_dir} --exclude 'checkpoint-*'"
    )
