"""Error pages that match the layout of the plane they happen in."""
import logging

from flask import render_template, request
from markupsafe import Markup
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError

from ..planes import current_plane

log = logging.getLogger("tenantpilot.http")

MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "You do not have permission to do this. Ask an owner or a platform admin if you need access."),
    404: ("Not found", "There is nothing here, or you do not have access to it."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    410: ("Gone", "This link has expired. Ask for a new one."),
    413: ("Too large", "This request is larger than any form here sends; nothing was changed."),
    429: ("Too many attempts", "Too many attempts. Wait a minute and try again."),
    500: ("Something went wrong", "An unexpected error occurred. It has been logged; please try again."),
}


def render_error(code: int, message: str | None = None):
    title, default = MESSAGES.get(code, MESSAGES[500])
    plane = current_plane()
    if request.headers.get("HX-Request"):
        return Markup('<p class="error-inline" role="alert">{}</p>').format(message or default), code
    return render_template("errors/error.html", code=code, title=title, message=message or default,
                           layout=f"{plane}/layout.html" if plane else "base.html"), code


def register(app):
    from werkzeug.exceptions import HTTPException, InternalServerError

    from .apiv1 import api_plane, problem_response
    from .inputs import reject_control_chars_in_query

    app.before_request(reject_control_chars_in_query)

    def page_or_problem(render):
        """API paths answer every error as a problem document, pages as a page."""
        def handler(exc):
            if api_plane():
                if not isinstance(exc, HTTPException):
                    exc = InternalServerError()
                return problem_response(exc)
            return render(exc)
        return handler

    # Codes without a page of their own (415, 422 from the API's validation, …).
    app.register_error_handler(HTTPException, page_or_problem(lambda exc: exc))

    @app.errorhandler(CSRFError)
    @page_or_problem
    def csrf_error(exc):
        return render_error(400, "This form was missing its security token or it expired (CSRF check failed). "
                                 "Reload the page and try again; nothing was changed.")

    for code in (400, 403, 404, 405, 410, 413, 429):
        app.register_error_handler(code, page_or_problem(lambda exc, code=code: render_error(
            code, getattr(exc, "description", None) if code in (400, 410) else None)))

    @app.errorhandler(DataError)
    def data_error(exc):
        # Defence in depth behind tenantpilot.web.inputs: a value the database refuses
        # (out of range, NUL) is the request's fault, and the transaction is rolled back.
        from ..extensions import db

        db.session.rollback()
        log.warning("request value refused by the database", extra={"error": type(exc.orig).__name__})
        if api_plane():
            from .apiv1 import ApiProblem

            return problem_response(ApiProblem(400, "bad-request", "Bad request",
                                               "A value is out of range or cannot be stored. Nothing was changed."))
        return render_error(400, "A value in this request is out of range or contains characters that cannot be "
                                 "stored. Nothing was changed.")

    @app.errorhandler(500)
    def server_error(exc):
        log.error("unhandled error", exc_info=getattr(exc, "original_exception", exc))
        if api_plane():
            return problem_response(exc if isinstance(exc, HTTPException) else InternalServerError())
        return render_error(500)
