"""A transformers `Trainer` app: a tiny BERT built offline from its config, token data made here,
`optimizers=sweep.hf.optimizers(...)` and `callbacks=[sweep.hf.LRSweepCallback(...)]`, evaluated and
saved each epoch (`checkpoint-*/`). Its search config (conf/hparams_search/optuna.yaml) is written
for the Hydra Optuna plugin; its one changed line is `override /hydra/sweeper: lr_sweep`. Its
`lr_sweep:` node says where lr-sweep's optimizer, groups and schedule nodes sit (under `training`)."""

import hydra
import numpy as np
import torch
import transformers
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

import sweep.hf


class Tokens(Dataset):
    """Sequences of 8 tokens whose label is their first token mod 3."""

    def __init__(self, n: int, seed: int, vocab: int) -> None:
        self.ids = torch.randint(1, vocab, (n, 8), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[0] % 3}


def accuracy(p) -> dict:
    return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    torch.manual_seed(cfg.seed)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**cfg.model))
    out = HydraConfig.get().runtime.output_dir
    args = transformers.TrainingArguments(
        output_dir=out,
        num_train_epochs=cfg.training.epochs,
        per_device_train_batch_size=cfg.training.batch_size,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=cfg.seed,
    )
    train = Tokens(cfg.data.n_train, 0, cfg.model.vocab_size)
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=Tokens(cfg.data.n_eval, 1, cfg.model.vocab_size),
        compute_metrics=accuracy,
        callbacks=[sweep.hf.LRSweepCallback(cfg, monitor=cfg.optimized_metric)],
        optimizers=sweep.hf.optimizers(
            model, cfg.training.optimizer, cfg.training.groups, cfg.training.schedule, args=args, train_dataset=train
        ),
    )
    trainer.train()
    evaluations = [entry for entry in trainer.state.log_history if cfg.optimized_metric in entry]
    value = float(evaluations[-1][cfg.optimized_metric])  # the last evaluation's
    OmegaConf.save({"value": value}, f"{out}/result.yaml")
    return value


if __name__ == "__main__":
    main()
