"""User models with keys that are not integers, for tests/test_hostile.py."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import models


class UuidUser(AbstractBaseUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    email = models.EmailField(unique=True)
    USERNAME_FIELD = "email"


class CodeUser(AbstractBaseUser):
    code = models.CharField(primary_key=True, max_length=40)
    USERNAME_FIELD = "code"
