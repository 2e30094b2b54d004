"""The "API tokens" page of each plane (/system/api-tokens, /admin/api-tokens): a person
creates tokens for their automation, sees each secret once, and revokes them.

The secret is shown in the answer to the create POST only — never put in the session
(a signed cookie is readable) or in a redirect — and that answer is ``no-store``. The
form carries an idempotency token, so a double click or a refresh of that POST creates
no second token.
"""
from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from flask_login import current_user, login_required

from .. import idempotency, tokens
from ..planes import platform_required
from .forms import ApiTokenForm, EmptyForm

system_bp = Blueprint("system_tokens", __name__)
admin_bp = Blueprint("admin_tokens", __name__)


def _actor(plane: str):
    if plane == "system":
        from .system import current_actor

        return current_actor()
    return tokens.owner_actor("admin", current_user)


def _user():
    return current_user._get_current_object()


def _page(plane: str, form: ApiTokenForm, created=None, secret=None, status=200):
    user = _user()
    held = tokens.grantable(plane, user)
    response = make_response(render_template(
        "api_tokens.html", layout=f"{plane}/layout.html", plane=plane, form=form, held=held,
        rows=[(row, tokens.state(row)) for row in tokens.tokens_of(plane, user.id)],
        created=created, secret=secret, empty_form=EmptyForm(),
        docs_url=url_for(f"api_docs.{plane}"), openapi_url=f"/{plane}/api/v1/openapi.json",
        action_url=url_for(f"{plane}_tokens.tokens_page")), status)
    if secret:
        response.headers["Cache-Control"] = "no-store"
    return response


def _form(plane: str, **kwargs) -> ApiTokenForm:
    form = ApiTokenForm(**kwargs)
    form.capabilities.choices = [(c, c) for c in tokens.grantable(plane, _user())]
    return form


def tokens_page(plane: str):
    form = _form(plane)
    if form.is_submitted():
        if form.validate():
            try:
                idempotency.claim(f"api_token.create:{plane}")
            except idempotency.AlreadySubmitted:
                flash("This form was already submitted; no second token was created. "
                      "The secret was shown once, on the page that answered it.", "info")
                return redirect(url_for(f"{plane}_tokens.tokens_page"))
            try:
                row, secret = tokens.create(plane, _user(), form.name.data, form.capabilities.data, form.days.data,
                                            _actor(plane))
            except tokens.TokenError as exc:
                for name, message in exc.errors.items():
                    getattr(form, "days" if name == "expires_in_days" else name).errors.append(message)
            else:
                return _page(plane, _form(plane, formdata=None), created=row, secret=secret, status=201)
        return _page(plane, form, status=422)
    return _page(plane, form)


def revoke(plane: str, token_id: int):
    if not EmptyForm().validate_on_submit():
        return redirect(url_for(f"{plane}_tokens.tokens_page"))
    try:
        row = tokens.revoke(plane, token_id, _actor(plane), owner_id=_user().id)
    except tokens.TokenError:
        from flask import abort

        abort(404)  # not theirs, or no such token: the same answer
    flash(f"Token “{row.name}” is revoked; requests with it are refused from now on.", "info")
    return redirect(url_for(f"{plane}_tokens.tokens_page"))


def _mount(bp: Blueprint, plane: str, guard) -> None:
    bp.add_url_rule("/api-tokens", "tokens_page", guard(lambda: tokens_page(plane)), methods=["GET", "POST"])
    bp.add_url_rule("/api-tokens/<int:token_id>/revoke", "revoke",
                    guard(lambda token_id: revoke(plane, token_id)), methods=["POST"])


_mount(system_bp, "system", platform_required())
_mount(admin_bp, "admin", login_required)
