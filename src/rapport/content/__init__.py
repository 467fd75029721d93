"""Message templates per channel and reusable snippets: validate, save, version, render, preview.

The surface other domains use (the campaign engine, the Deliverer)::

    from rapport.content import service as content_service

    rendered = content_service.render_template(db, workspace_id=ws, template=t, profile_id=p, now=now,
                                               extra_context={"campaign": {...}, "links": {...}})
    rendered.parts       # {"subject": ..., "html": ..., "text": ...} in the channel's format
    rendered.variants    # {"hero": "vip"} the variant each rule block showed

    prepared = content_service.renderer(db, workspace_id=ws, template=t, now=now)   # once per template
    prepared.prefetch(profiles)       # per batch: computed traits and memberships in a few queries
    prepared.render_profile(profile).raise_for_errors()                             # per recipient

    content_service.message_content(t)               # the outbox ``content`` of a message from ``t``
    content_service.render_outbox_content(db, ...)   # what the Deliverer renders at send time

Modules: ``parts`` (the parts of each channel), ``conditions`` (rule-block conditions in the segment
language, decided per recipient), ``rendering`` (``TemplateRenderer``), ``validation`` (on save),
``repository``, ``service``, ``schemas``, ``api``.
"""
