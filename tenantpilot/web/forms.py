"""Flask-WTF forms (CSRF included)."""
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Regexp


class LoginForm(FlaskForm):
    email = StringField("E-mail", validators=[DataRequired(message="Enter your e-mail address."),
                                              Length(max=255), Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter a valid e-mail address.")])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=200)])


class BreakGlassForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[
        DataRequired(message="A reason is required for break-glass access."),
        Length(min=10, max=500, message="The reason must be 10 to 500 characters.")])
    minutes = IntegerField("Duration (minutes)", default=30, validators=[
        NumberRange(min=5, max=240, message="Choose between 5 and 240 minutes.")])


class EmptyForm(FlaskForm):
    """A POST that carries only its CSRF token (logout, stop, switch)."""


class WorkspaceForm(FlaskForm):
    workspace_id = SelectField("Workspace", coerce=int)
