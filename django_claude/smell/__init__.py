"""The smell test: a cheap LLM judge on sampled live traffic, its verdicts,
the failures kept for review, and the pass-rate alert.

- ``judge``: ask the judge model about one prompt and answer, read its verdict;
- ``verdicts``: judge a sampled call, store its verdict, keep a failure,
  abandon a call nothing can judge, close verdicts left pending;
- ``alerts``: recent pass rates against baselines, one alert per episode;
- ``background``: the one daemon thread that does smell-test work off the
  request path; ``inprocess``: the judge run there on sites without Celery.

Which calls are sampled, and where their text waits, is ``recording.sampling``;
the Celery task and the receiver that queues it are in ``django_claude.tasks``;
``django_claude.judging`` chooses between Celery and this process.
"""
