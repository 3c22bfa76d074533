"""The progress bar of ``fit`` (tqdm): steps done, the last train and validation NLL (or loss)."""

from __future__ import annotations


class Progress:
    """A tqdm bar over optimisation steps; ``enabled=False`` draws nothing.

    ``update(num, record)`` advances by ``num`` steps and shows the record's ``train_nll``
    and ``val_nll`` (``train_loss`` and ``val_loss`` when training by another objective);
    use as a context manager (or call ``close``)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not enabled, desc="fit",
                        unit="step")

    def update(self, num: int, record: dict) -> None:
        self.bar.update(num)
        loss = "loss" if "train_loss" in record else "nll"  # another objective: show it
        shown = (("train", record.get(f"train_{loss}")), ("val", record.get(f"val_{loss}")))
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown if v is not None})

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
