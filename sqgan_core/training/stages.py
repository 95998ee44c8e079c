"""One module per training stage, so DDP wraps exactly the parameters a stage trains.

Each forward returns the generator's outputs and its VQ terms; the trainer adds the stage's losses.
The stage modules hold references to the SQGAN's sub-modules, so training updates the model in place.
"""
from __future__ import annotations

import torch
from torch import nn

from sqgan_core.models import SQGAN
from sqgan_core.models.sqgan import channel_one_hot


class SemanticStage(nn.Module):
    """G_s: one-hot s -> E_s -> SAMM/VQ (straight-through) -> ADM -> D_s logits."""

    def __init__(self, model: SQGAN) -> None:
        super().__init__()
        self.conv_in, self.encoder = model.sem_conv_in, model.sem_encoder
        self.mq, self.decoder = model.sem_mq, model.sem_decoder

    def forward(self, seg: torch.Tensor, m: float) -> dict[str, torch.Tensor]:
        out = self.mq.select(self.encoder(self.conv_in(seg)), seg, m)
        logits = self.decoder(self.mq.adm(out.grid, out.keep))
        return {"logits": logits, "commit": out.quant.commit_loss, "perplexity": out.quant.perplexity}


class ImageStage(nn.Module):
    """G_x: InputNet_x(x) + SemPE(s) -> E_x -> SAMM/VQ -> ADM -> D_x(., cond), where cond is the true
    map (stage 2) or s_hat from the frozen G_s (stage 3, `finetune=True`)."""

    def __init__(self, model: SQGAN, finetune: bool = False) -> None:
        super().__init__()
        self.input_net, self.sempe, self.encoder = model.input_net, model.sempe, model.img_encoder
        self.mq, self.decoder = model.img_mq, model.img_decoder
        self.finetune = finetune
        # The frozen semantic pipeline is kept outside the module tree: DDP must not see it.
        self._semantic = [SemanticStage(model)] if finetune else []

    @torch.no_grad()
    def semantic_condition(self, seg: torch.Tensor, m_s: float) -> torch.Tensor:
        stage = self._semantic[0].eval()
        idx = stage(seg, m_s)["logits"].argmax(1)
        return channel_one_hot(idx, seg.dtype).contiguous()

    def forward(self, x: torch.Tensor, seg: torch.Tensor, m_x: float, m_s: float,
                cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`cond`: the map D_x is conditioned on; by default the true map (stage 2) or the frozen
        G_s's s_hat (stage 3)."""
        if cond is None:
            cond = self.semantic_condition(seg, m_s) if self.finetune else seg
        out = self.mq.select(self.encoder(self.input_net(x) + self.sempe(seg)), seg, m_x)
        x_hat = self.decoder(self.mq.adm(out.grid, out.keep), cond)
        return {"x_hat": x_hat, "commit": out.quant.commit_loss, "perplexity": out.quant.perplexity,
                "cond": cond}

    @property
    def last_layer(self) -> torch.Tensor:
        return self.decoder.conv_out.weight


class JointStage(nn.Module):
    """G_s and G_x in one loop from one batch: G_s learns s_hat by cross-entropy while G_x learns to
    decode conditioned on that s_hat (detached, so the image loss never pulls G_s away from the labels)
    or, on a share of the steps, on the true map. One data load and one G_s forward serve both, and
    G_x always trains on the s_hat the current G_s produces, which separate stages 2 and 3 only reach
    at the end."""

    def __init__(self, model: SQGAN) -> None:
        super().__init__()
        self.semantic = SemanticStage(model)
        self.image = ImageStage(model, finetune=False)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, m_x: float, m_s: float,
                true_map: bool = False) -> dict[str, torch.Tensor]:
        sem = self.semantic(seg, m_s)
        cond = seg if true_map else channel_one_hot(sem["logits"].detach().argmax(1), seg.dtype).contiguous()
        img = self.image(x, seg, m_x, m_s, cond=cond)
        return {"logits": sem["logits"], "x_hat": img["x_hat"], "cond": cond,
                "commit": sem["commit"] + img["commit"], "perplexity": img["perplexity"],
                "perplexity_s": sem["perplexity"]}

    @property
    def last_layer(self) -> torch.Tensor:
        return self.image.last_layer
