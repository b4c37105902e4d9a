"""Closed forms the model twin is checked against (pure arithmetic).

Mean response times (waiting plus service) of the classic queues, in the unit of the rates
given (``1/mu`` for the supermarket forms, which are in mean service times):

* M/M/1: ``1 / (mu - lam)``;
* M/M/c: Erlang C waiting probability ``C(c, a)`` with ``a = lam / mu``, then
  ``C / (c mu - lam) + 1 / mu``;
* the supermarket model (Vvedenskaya, Dobrushin & Karpelevich 1996; Mitzenmacher 2001), n
  single-server FIFO queues with exponential service, Poisson arrivals at ``lam`` per server,
  n -> infinity: random placement ``1 / (1 - lam)`` (each queue is M/M/1), two choices (join the
  shorter of two queues sampled at random) ``sum_{i>=1} lam^(2^i - 2)``.
"""
def _check_load(load):
    if not 0 <= load < 1:
        raise ValueError(f"load {load!r} must be in [0, 1): the queue is unstable otherwise")


def mm1_response(lam, mu):
    """Mean response time of M/M/1: ``1 / (mu - lam)``."""
    _check_load(lam / mu)
    return 1.0 / (mu - lam)


def erlang_c(c, a):
    """Probability that an arrival waits in M/M/c with offered load ``a = lam / mu`` (< c).

    Computed from the Erlang B recursion ``B(k) = a B(k-1) / (k + a B(k-1))``, stable for
    large ``c``, then ``C = B / (1 - (a / c) (1 - B))``.
    """
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"servers {c!r} must be an int >= 1")
    _check_load(a / c)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b / (1.0 - (a / c) * (1.0 - b))


def mmc_response(lam, mu, c):
    """Mean response time of M/M/c: ``C(c, lam/mu) / (c mu - lam) + 1 / mu``."""
    return erlang_c(c, lam / mu) / (c * mu - lam) + 1.0 / mu


def supermarket_random(lam):
    """Random placement over n -> infinity queues at load ``lam``: ``1 / (1 - lam)``."""
    _check_load(lam)
    return 1.0 / (1.0 - lam)


def supermarket_two_choices(lam, tolerance=1e-15):
    """Power of two choices over n -> infinity queues: ``sum_{i>=1} lam^(2^i - 2)``.

    The terms fall doubly exponentially; the sum stops when one is below ``tolerance``.
    """
    _check_load(lam)
    total, i = 0.0, 1
    while True:
        term = lam ** (2 ** i - 2)    # 0 ** 0 is 1: the first term is always 1
        total += term
        if term < tolerance:
            return total
        i += 1
