"""The paper's networks and losses: DFT-Net's E, F, T, the warp f and Eq. (5) (``models``), the
layers it shares with GANimation (``blocks``), the networks by name (``generators``), Eqs. (6)-(10)
(``losses``) and the fast path per device (``accel``). The README's paper table maps each symbol."""
