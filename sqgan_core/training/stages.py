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

    def forward(self, x: torch.Tensor, seg: torch.Tensor, m_x: float, m_s: float) -> dict[str, torch.Tensor]:
        cond = self.semantic_condition(seg, m_s) if self.finetune else seg
        out = self.mq.select(self.encoder(self.input_net(x) + self.sempe(seg)), seg, m_x)
        x_hat = self.decoder(self.mq.adm(out.grid, out.keep), cond)
        return {"x_hat": x_hat, "commit": out.quant.commit_loss, "perplexity": out.quant.perplexity,
                "cond": cond}

    @property
    def last_layer(self) -> torch.Tensor:
        return self.decoder.conv_out.weight
