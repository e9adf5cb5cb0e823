"""Jobs, in three parts:

- `creation`: a new job's row, written before anything is sent upstream, and what
  its submitter records of the upstream's answer;
- `queue`: the lease queue the workers take jobs from, and what they record;
- `reads`: the read models pages and the API show.
"""
