"""One module per published experiment (the seed's sweep, Bengio 1994, random guessing, the
follow-ups, the ablations) and ``explain``, the report that answers the question."""
