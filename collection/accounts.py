"""Admin accounts: hashed passwords (werkzeug scrypt/pbkdf2)."""
from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gazelab.schema import AdminUser, utcnow

MIN_PASSWORD_LENGTH = 8


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def create_admin(db: Session, name: str, password: str) -> AdminUser:
    if db.scalar(select(AdminUser).where(AdminUser.name == name)):
        raise ValueError(f"an admin named {name!r} exists already")
    if not name.strip() or len(name) > 64:
        raise ValueError("an admin name must be 1 to 64 characters")
    _check_password(password)
    user = AdminUser(name=name, password_hash=generate_password_hash(password))
    db.add(user)
    db.flush()
    return user


def set_password(db: Session, name: str, password: str) -> None:
    user = db.scalar(select(AdminUser).where(AdminUser.name == name))
    if user is None:
        raise ValueError(f"no admin named {name!r}")
    _check_password(password)
    user.password_hash = generate_password_hash(password)
    user.session_version = (user.session_version or 0) + 1   # every login cookie ends


# Checked when the name is unknown, so that an unknown name costs the same time as a
# known one with a wrong password (no telling which admin names exist).
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


def authenticate(db: Session, name: str, password: str) -> AdminUser | None:
    user = db.scalar(select(AdminUser).where(AdminUser.name == name))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    return user


def session_version(db: Session, user_id: int) -> int | None:
    """The admin's current login-cookie version (None: no such admin)."""
    return db.scalar(select(AdminUser.session_version).where(AdminUser.id == user_id))


def end_sessions(db: Session, user_id: int) -> None:
    """Revoke every login cookie of this admin (logout everywhere)."""
    user = db.get(AdminUser, user_id)
    if user is not None:
        user.session_version = (user.session_version or 0) + 1


def admin_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AdminUser)) or 0


def ensure_first_admin(db: Session, name: str = "admin") -> str | None:
    """Create the first admin when none exists; return its one-time password (else None)."""
    if admin_count(db):
        return None
    password = secrets.token_urlsafe(12)
    create_admin(db, name, password)
    return password
