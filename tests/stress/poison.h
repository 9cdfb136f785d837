/*
 * Objects a `done` hook kills: poisoned always, and really freed when
 * AddressSanitizer is there to catch a later use.
 */
#ifndef QPD_TEST_POISON_H
#define QPD_TEST_POISON_H

#if defined(__SANITIZE_ADDRESS__)
#define FREE_ON_DONE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FREE_ON_DONE 1
#endif
#endif

#define ALIVE 0xa11ea11ea11ea11eULL
#define DEAD 0xdeaddeaddeaddeadULL

#endif
