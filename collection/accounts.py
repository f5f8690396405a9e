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


def authenticate(db: Session, name: str, password: str) -> AdminUser | None:
    user = db.scalar(select(AdminUser).where(AdminUser.name == name))
    if user is None or not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    return user


def admin_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AdminUser)) or 0


def ensure_first_admin(db: Session, name: str = "admin") -> str | None:
    """Create the first admin when none exists; return its one-time password (else None)."""
    if admin_count(db):
        return None
    password = secrets.token_urlsafe(12)
    create_admin(db, name, password)
    return password
