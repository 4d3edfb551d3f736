"""TorchScript-scriptable view of MONAI's 3D SwinUNETR (used by export_swinunetr.py).

Why this exists
---------------
MONAI 1.6.1's ``SwinUNETR`` cannot be ``torch.jit.script``-ed (its blocks reach
``torch.utils.checkpoint`` and einops, and ``BasicLayer`` uses ``np.ceil``), and a
``torch.jit.trace`` bakes every shape-dependent Python decision into constants: the
per-stage window size (a stage whose grid is <= 7 uses a smaller window and no shift),
the window padding, and the shifted-window attention mask. A traced model therefore only
runs at the exact spatial size it was traced at (verified: a trace at 64^3 fails at 32^3,
96^3 and 128^3).

``ScriptableSwinUNETR`` wraps an eager MONAI ``SwinUNETR`` and re-implements only the
Swin transformer encoder (``swinViT``) with the same arithmetic as MONAI 1.6.1, in code
TorchScript can compile, computing window sizes, padding and masks from the input shape
at run time. All parameters and buffers are the eager model's own modules, under the
same names, so ``state_dict()`` keys are identical to MONAI's (checked by
``check_same_keys``). The convolutional UNETR encoder/decoder blocks are MONAI's own
modules (they script as they are).

Inference only: dropout / drop-path (identities in eval mode) are not part of the port.

Supported configuration (the one segnode uses; anything else raises NotImplementedError
and export_swinunetr.py falls back to tracing): spatial_dims=3, patch_size=2,
downsample="merging", use_v2=False, no Hyena stages, patch_norm=False, 4 stages.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def _py_slice(start: Optional[int], stop: Optional[int], n: int) -> Tuple[int, int]:
    """Bounds [lo, hi) of Python's ``range(n)[start:stop]`` (step 1), as MONAI's
    ``compute_mask`` relies on ``slice(-0, None) == slice(0, None)`` when a shift is 0."""
    lo = 0
    if start is not None:
        s = start
        if s < 0:
            s = s + n
            if s < 0:
                s = 0
        elif s > n:
            s = n
        lo = s
    hi = n
    if stop is not None:
        e = stop
        if e < 0:
            e = e + n
            if e < 0:
                e = 0
        elif e > n:
            e = n
        hi = e
    if hi < lo:
        hi = lo
    return lo, hi


def _window_and_shift(
    size: List[int], window: List[int], shift: List[int]
) -> Tuple[List[int], List[int]]:
    """MONAI ``get_window_size``: a dimension not larger than the window uses its full
    size as the window and is not shifted."""
    ws: List[int] = []
    ss: List[int] = []
    for i in range(len(size)):
        if size[i] <= window[i]:
            ws.append(size[i])
            ss.append(0)
        else:
            ws.append(window[i])
            ss.append(shift[i])
    return ws, ss


def _window_partition(x: torch.Tensor, ws: List[int]) -> torch.Tensor:
    b, d, h, w, c = x.shape
    x = x.view(b, d // ws[0], ws[0], h // ws[1], ws[1], w // ws[2], ws[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).contiguous().view(-1, ws[0] * ws[1] * ws[2], c)


def _window_reverse(windows: torch.Tensor, ws: List[int], b: int, d: int, h: int, w: int) -> torch.Tensor:
    x = windows.view(b, d // ws[0], h // ws[1], w // ws[2], ws[0], ws[1], ws[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).contiguous().view(b, d, h, w, -1)


def _compute_mask(dims: List[int], ws: List[int], ss: List[int], device: torch.device) -> torch.Tensor:
    """MONAI ``compute_mask`` (3D), including its slice semantics for zero shifts."""
    d, h, w = dims[0], dims[1], dims[2]
    img_mask = torch.zeros((1, d, h, w, 1), device=device)
    cnt = 0
    d_sl = [_py_slice(None, -ws[0], d), _py_slice(-ws[0], -ss[0], d), _py_slice(-ss[0], None, d)]
    h_sl = [_py_slice(None, -ws[1], h), _py_slice(-ws[1], -ss[1], h), _py_slice(-ss[1], None, h)]
    w_sl = [_py_slice(None, -ws[2], w), _py_slice(-ws[2], -ss[2], w), _py_slice(-ss[2], None, w)]
    for dd in d_sl:
        for hh in h_sl:
            for ww in w_sl:
                img_mask[:, dd[0] : dd[1], hh[0] : hh[1], ww[0] : ww[1], :] = float(cnt)
                cnt += 1
    mask_windows = _window_partition(img_mask, ws).squeeze(-1)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)


class _WindowAttention(nn.Module):
    """MONAI ``WindowAttention.forward`` (the non-flash path)."""

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        self.num_heads: int = int(src.num_heads)
        self.scale: float = float(src.scale)
        self.relative_position_bias_table = src.relative_position_bias_table
        self.register_buffer("relative_position_index", src.relative_position_index)
        self.qkv = src.qkv
        self.proj = src.proj

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        idx = self.relative_position_index.clone()[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[idx].reshape(n, n, -1).permute(2, 0, 1).contiguous()
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = torch.softmax(attn, dim=-1).to(v.dtype)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class _SwinBlock(nn.Module):
    """MONAI ``SwinTransformerBlock.forward`` (3D, inference only)."""

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        # DropPath and the dropouts are identities at inference and are left out.
        self.window_size: List[int] = [int(v) for v in src.window_size]
        self.shift_size: List[int] = [int(v) for v in src.shift_size]
        self.norm1 = src.norm1
        self.attn = _WindowAttention(src.attn)
        self.norm2 = src.norm2
        self.mlp = src.mlp

    def forward(self, x: torch.Tensor, mask_matrix: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        b, d, h, w, c = x.shape
        ws, ss = _window_and_shift([d, h, w], self.window_size, self.shift_size)
        pad_d1 = (ws[0] - d % ws[0]) % ws[0]
        pad_b = (ws[1] - h % ws[1]) % ws[1]
        pad_r = (ws[2] - w % ws[2]) % ws[2]
        x = F.pad(x, [0, 0, 0, pad_r, 0, pad_b, 0, pad_d1])
        dp, hp, wp = x.shape[1], x.shape[2], x.shape[3]
        shifted = ss[0] > 0 or ss[1] > 0 or ss[2] > 0
        attn_mask: Optional[torch.Tensor] = None
        if shifted:
            x = torch.roll(x, shifts=[-ss[0], -ss[1], -ss[2]], dims=[1, 2, 3])
            attn_mask = mask_matrix
        windows = _window_partition(x, ws)
        windows = self.attn(windows, attn_mask)
        windows = windows.view(-1, ws[0], ws[1], ws[2], c)
        x = _window_reverse(windows, ws, b, dp, hp, wp)
        if shifted:
            x = torch.roll(x, shifts=[ss[0], ss[1], ss[2]], dims=[1, 2, 3])
        if pad_d1 > 0 or pad_r > 0 or pad_b > 0:
            x = x[:, :d, :h, :w, :].contiguous()
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class _PatchMerging(nn.Module):
    """MONAI ``PatchMerging`` (the v0.9.0 "merging" mode), 3D."""

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        self.norm = src.norm
        self.reduction = src.reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[1], x.shape[2], x.shape[3]
        if (h % 2 == 1) or (w % 2 == 1) or (d % 2 == 1):
            x = F.pad(x, [0, 0, 0, w % 2, 0, h % 2, 0, d % 2])
        x0 = x[:, 0::2, 0::2, 0::2, :]
        x1 = x[:, 1::2, 0::2, 0::2, :]
        x2 = x[:, 0::2, 1::2, 0::2, :]
        x3 = x[:, 0::2, 0::2, 1::2, :]
        x4 = x[:, 1::2, 1::2, 0::2, :]
        x5 = x[:, 1::2, 0::2, 1::2, :]
        x6 = x[:, 0::2, 1::2, 1::2, :]
        x7 = x[:, 1::2, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3, x4, x5, x6, x7], -1)
        return self.reduction(self.norm(x))


class _BasicLayer(nn.Module):
    """MONAI ``BasicLayer.forward`` (3D)."""

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        if getattr(src, "use_hyena", False):
            raise NotImplementedError("Hyena stages are not supported by the scriptable port")
        self.window_size: List[int] = [int(v) for v in src.window_size]
        self.shift_size: List[int] = [int(v) for v in src.shift_size]
        self.blocks = nn.ModuleList([_SwinBlock(b) for b in src.blocks])
        if src.downsample is None:
            raise NotImplementedError("every SwinUNETR stage has a downsample layer")
        if type(src.downsample).__name__ != "PatchMerging":
            raise NotImplementedError(f"downsample {type(src.downsample).__name__} not supported")
        self.downsample = _PatchMerging(src.downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        ws, ss = _window_and_shift([d, h, w], self.window_size, self.shift_size)
        x = x.permute(0, 2, 3, 4, 1)
        dp = (d + ws[0] - 1) // ws[0] * ws[0]
        hp = (h + ws[1] - 1) // ws[1] * ws[1]
        wp = (w + ws[2] - 1) // ws[2] * ws[2]
        attn_mask = _compute_mask([dp, hp, wp], ws, ss, x.device)
        for blk in self.blocks:
            x = blk(x, attn_mask)
        x = x.reshape(b, d, h, w, -1)
        x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)


class _PatchEmbed(nn.Module):
    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        if src.norm is not None:
            raise NotImplementedError("patch_norm=True is not supported by the scriptable port")
        self.patch_size: List[int] = [int(v) for v in src.patch_size]
        self.proj = src.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[2], x.shape[3], x.shape[4]
        p = self.patch_size
        if w % p[2] != 0:
            x = F.pad(x, [0, p[2] - w % p[2]])
        if h % p[1] != 0:
            x = F.pad(x, [0, 0, 0, p[1] - h % p[1]])
        if d % p[0] != 0:
            x = F.pad(x, [0, 0, 0, 0, 0, p[0] - d % p[0]])
        return self.proj(x)


def _proj_out(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    if normalize:
        ch = x.shape[1]
        x = x.permute(0, 2, 3, 4, 1)
        x = F.layer_norm(x, [ch])
        x = x.permute(0, 4, 1, 2, 3)
    return x


class _SwinViT(nn.Module):
    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        if getattr(src, "use_v2", False):
            raise NotImplementedError("use_v2=True is not supported by the scriptable port")
        if src.num_layers != 4:
            raise NotImplementedError("SwinUNETR has exactly 4 Swin stages")
        self.patch_embed = _PatchEmbed(src.patch_embed)
        self.layers1 = nn.ModuleList([_BasicLayer(src.layers1[0])])
        self.layers2 = nn.ModuleList([_BasicLayer(src.layers2[0])])
        self.layers3 = nn.ModuleList([_BasicLayer(src.layers3[0])])
        self.layers4 = nn.ModuleList([_BasicLayer(src.layers4[0])])

    def forward(self, x: torch.Tensor, normalize: bool) -> List[torch.Tensor]:
        x0 = self.patch_embed(x)
        x1 = self.layers1[0](x0.contiguous())
        x2 = self.layers2[0](x1.contiguous())
        x3 = self.layers3[0](x2.contiguous())
        x4 = self.layers4[0](x3.contiguous())
        return [
            _proj_out(x0, normalize),
            _proj_out(x1, normalize),
            _proj_out(x2, normalize),
            _proj_out(x3, normalize),
            _proj_out(x4, normalize),
        ]


class ScriptableSwinUNETR(nn.Module):
    """Same parameters and same forward as the given eager MONAI SwinUNETR (3D), scriptable.

    Input [N, C_in, D, H, W] float; each of D, H, W must be a multiple of 32
    (patch_size ** 5), checked at run time; output [N, C_out, D, H, W] logits.
    """

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        if int(src.patch_size) != 2:
            raise NotImplementedError("only patch_size=2 is supported by the scriptable port")
        if src.swinViT.patch_embed.proj.weight.dim() != 5:
            raise NotImplementedError("only spatial_dims=3 is supported by the scriptable port")
        self.normalize: bool = bool(src.normalize)
        self.divisor: int = int(src.patch_size) ** 5
        self.swinViT = _SwinViT(src.swinViT)
        self.encoder1 = src.encoder1
        self.encoder2 = src.encoder2
        self.encoder3 = src.encoder3
        self.encoder4 = src.encoder4
        self.encoder10 = src.encoder10
        self.decoder5 = src.decoder5
        self.decoder4 = src.decoder4
        self.decoder3 = src.decoder3
        self.decoder2 = src.decoder2
        self.decoder1 = src.decoder1
        self.out = src.out

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        if x_in.dim() != 5:
            raise ValueError("SwinUNETR expects a 5-D input [N, C, D, H, W]")
        for i in range(2, 5):
            if x_in.shape[i] % self.divisor != 0:
                raise ValueError("SwinUNETR: every spatial dimension must be a multiple of 32")
        hs = self.swinViT(x_in, self.normalize)
        enc0 = self.encoder1(x_in)
        enc1 = self.encoder2(hs[0])
        enc2 = self.encoder3(hs[1])
        enc3 = self.encoder4(hs[2])
        dec4 = self.encoder10(hs[4])
        dec3 = self.decoder5(dec4, hs[3])
        dec2 = self.decoder4(dec3, enc3)
        dec1 = self.decoder3(dec2, enc2)
        dec0 = self.decoder2(dec1, enc1)
        out = self.decoder1(dec0, enc0)
        return self.out(out)


def check_same_keys(eager: nn.Module, port: nn.Module) -> None:
    a, b = set(eager.state_dict().keys()), set(port.state_dict().keys())
    if a != b:
        raise RuntimeError(
            f"scriptable port does not mirror MONAI's state_dict: only eager {sorted(a - b)[:5]}, "
            f"only port {sorted(b - a)[:5]}"
        )
