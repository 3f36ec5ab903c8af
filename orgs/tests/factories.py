import factory

from ops_center.api.keys import hash_api_key
from orgs.models import ApiKey, Membership, Organization, User, generate_api_key


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    tier = User.Tier.FREE
    password = factory.django.Password("pass-for-tests")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    org = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.MEMBER


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Builds a key; the raw secret is left on the instance as ``raw_key``."""

    class Meta:
        model = ApiKey

    user = factory.SubFactory(UserFactory)
    name = "test key"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        prefix, raw_key = generate_api_key()
        api_key = model_class.objects.create(*args, prefix=prefix, key_hash=hash_api_key(raw_key), **kwargs)
        api_key.raw_key = raw_key
        return api_key
