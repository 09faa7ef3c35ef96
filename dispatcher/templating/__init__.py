"""Template machinery behind :class:`dispatcher.templating.renderer.Renderer`.

* :mod:`~dispatcher.templating.sandbox`: the sandboxed Jinja environment and its limits.
* :mod:`~dispatcher.templating.limits`: what one render may cost, and how values are sized.
* :mod:`~dispatcher.templating.filter_bounds`: filters behind the budget; the costly ones
  bounded before they run.
* :mod:`~dispatcher.templating.call_bounds`: method calls and globals behind the budget;
  ``lipsum()``, ``encode()`` and ``to_bytes()`` refused.
* :mod:`~dispatcher.templating.filters`: dates, times and money in the recipient's locale.
* :mod:`~dispatcher.templating.overrides`: operators' database versions, as the renderer reads them.
* :mod:`~dispatcher.templating.versions`: the ``Dispatcher.templates`` API to save and restore them.
* :mod:`~dispatcher.templating.checks`: sample contexts, previews and ``templates validate``.
"""
