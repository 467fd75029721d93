"""Pure scoring models: arrays in, arrays or fitted parameters out; no session, no I/O.

Modules (import the one you need; ``propensity`` pulls in scikit-learn, so nothing is re-exported here):

- ``rfm``: recency/frequency/monetary quintiles and the named RFM segment.
- ``summary``: transactions to the per-customer (x, t_x, T, mean spend) summary the CLV models take.
- ``bgnbd``: BG/NBD fit, expected purchases, P(alive).
- ``gamma_gamma``: Gamma-Gamma spend fit and conditional expected average spend.
- ``clv``: discounted 12-month CLV, churn danger bands, value tiers.
- ``propensity``: a time-validated classifier with AUC, calibration and a ``usable`` flag.
- ``loyalty``: the loyalty score (0-100) and level.

Services persist the results; see docs/scores.md for every definition.
"""
