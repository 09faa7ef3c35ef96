"""Template machinery behind :class:`dispatcher.templating.renderer.Renderer`.

* :mod:`~dispatcher.templating.sandbox`: the sandboxed Jinja environment and its limits.
* :mod:`~dispatcher.templating.filters`: dates, times and money in the recipient's locale.
* :mod:`~dispatcher.templating.overrides`: operators' database versions, as the renderer reads them.
* :mod:`~dispatcher.templating.versions`: the ``Dispatcher.templates`` API to save and restore them.
* :mod:`~dispatcher.templating.checks`: sample contexts, previews and ``templates validate``.
"""
